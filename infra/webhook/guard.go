package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// Guard decides which addresses a webhook may connect to: public unicast
// ones, and those in Allow. It judges the address a connection is really
// made to, after name resolution, so a name that resolves to a public
// address when a webhook is created and to an internal one later (DNS
// rebinding) is refused all the same.
type Guard struct {
	// Allow lists prefixes that may be reached although they are internal,
	// for receivers inside the cluster.
	Allow []netip.Prefix
}

// RefusedError is a connection the guard did not allow.
type RefusedError struct {
	// Host is the name that resolved to Addr, "" for an address literal.
	Host   string
	Addr   netip.Addr
	Reason string
}

func (e *RefusedError) Error() string {
	what := "a " + e.Reason
	if strings.ContainsRune("aeiou", rune(e.Reason[0])) {
		what = "an " + e.Reason
	}
	if e.Host != "" {
		return fmt.Sprintf("webhook: %s resolves to %s, %s address, which webhooks may not reach", e.Host, e.Addr, what)
	}
	return fmt.Sprintf("webhook: %s is %s address, which webhooks may not reach", e.Addr, what)
}

// blocked are the IPv4 ranges that are not public unicast beyond what
// netip's predicates name (RFC 6890 and the cloud metadata services).
var blocked = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this-network"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared (carrier-grade NAT, cloud metadata)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("2001::/32"), "Teredo"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("100::/64"), "discard"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible"},
}

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	nat64Loc  = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// Check returns a *RefusedError unless addr may be reached. IPv4 addresses
// in IPv6 forms (mapped, NAT64, 6to4) are judged as the IPv4 address they
// carry.
func (g *Guard) Check(addr netip.Addr) error {
	addr = addr.WithZone("")
	for _, p := range g.Allow {
		if p.Contains(addr) || p.Contains(addr.Unmap()) {
			return nil
		}
	}
	if reason := refusal(addr); reason != "" {
		return &RefusedError{Addr: addr, Reason: reason}
	}
	return nil
}

func refusal(addr netip.Addr) string {
	if !addr.IsValid() {
		return "invalid"
	}
	addr = addr.Unmap()
	if addr.Is6() {
		b := addr.As16()
		switch {
		case nat64.Contains(addr):
			return embedded("NAT64", netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
		case nat64Loc.Contains(addr):
			return "NAT64 (local-use)"
		case sixToFour.Contains(addr):
			return embedded("6to4", netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
		}
	}
	switch {
	case addr.IsUnspecified():
		return "unspecified"
	case addr.IsLoopback():
		return "loopback"
	case addr.IsPrivate():
		return "private"
	case addr.IsLinkLocalUnicast():
		return "link-local (cloud metadata)"
	case addr.IsMulticast(), addr.IsLinkLocalMulticast(), addr.IsInterfaceLocalMulticast():
		return "multicast"
	case addr == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "broadcast"
	}
	for _, b := range blocked {
		if b.prefix.Contains(addr) {
			return b.reason
		}
	}
	if !addr.IsGlobalUnicast() {
		return "non-unicast"
	}
	return ""
}

// embedded judges the IPv4 address inside an IPv6 transition address.
func embedded(kind string, v4 netip.Addr) string {
	if r := refusal(v4); r != "" {
		return kind + " form of a " + r
	}
	return ""
}

// LookupFunc resolves a host name to its addresses.
type LookupFunc func(ctx context.Context, host string) ([]netip.Addr, error)

// dialer connects to the first allowed address of a host, checking each
// address it dials once more in the socket's Control hook.
type dialer struct {
	guard  *Guard
	lookup LookupFunc
	net    net.Dialer
}

func newDialer(g *Guard, lookup LookupFunc, timeout time.Duration) *dialer {
	if lookup == nil {
		lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	d := &dialer{guard: g, lookup: lookup}
	d.net = net.Dialer{Timeout: timeout, Control: d.control}
	return d
}

// DialContext is http.Transport's DialContext.
func (d *dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	name := ""
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else if addrs, err = d.lookup(ctx, host); err != nil {
		return nil, fmt.Errorf("webhook: resolving %s: %w", host, err)
	} else {
		name = host
	}
	var firstErr error
	for _, a := range addrs {
		if err := d.guard.Check(a); err != nil {
			var r *RefusedError
			if errors.As(err, &r) {
				r.Host = name
			}
			firstErr = cmpErr(firstErr, err)
			continue
		}
		c, err := d.net.DialContext(ctx, network, net.JoinHostPort(a.String(), port))
		if err == nil {
			return c, nil
		}
		firstErr = cmpErr(firstErr, err)
	}
	if firstErr == nil {
		firstErr = fmt.Errorf("webhook: %s has no address", host)
	}
	return nil, firstErr
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// control refuses a socket about to connect to a refused address: the last
// word, whatever resolved the address.
func (d *dialer) control(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("webhook: dialling %q, not an address", address)
	}
	return d.guard.Check(a)
}
