package webhook

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/domain"
)

func TestGuard_Check(t *testing.T) {
	refused := []string{
		"127.0.0.1", "127.255.255.254", "::1", "0.0.0.0", "::", "0.1.2.3",
		"10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1", "fc00::1", "fd00:ec2::254",
		"169.254.169.254", "169.254.170.2", "fe80::1", "fe80::1%eth0",
		"100.64.0.1", "100.100.100.200", "192.0.0.192", "192.0.2.1", "198.18.0.1", "203.0.113.9",
		"224.0.0.1", "239.255.255.250", "ff02::1", "ff05::2", "255.255.255.255", "240.0.0.1",
		"::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.0.0.1", "::127.0.0.1",
		"64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::1", "2002:7f00:1::1", "2002:a9fe:a9fe::1",
		"2001::1", "2001:db8::1", "100::1",
	}
	allowed := []string{"93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"}
	var g Guard
	for _, s := range refused {
		var r *RefusedError
		if err := g.Check(netip.MustParseAddr(s)); !errors.As(err, &r) || r.Reason == "" {
			t.Errorf("Check(%s) = %v, want a refusal with a reason", s, err)
		}
	}
	for _, s := range allowed {
		if err := g.Check(netip.MustParseAddr(s)); err != nil {
			t.Errorf("Check(%s): %v", s, err)
		}
	}
	in := Guard{Allow: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}}
	if err := in.Check(netip.MustParseAddr("10.1.2.3")); err != nil {
		t.Errorf("allowlisted address refused: %v", err)
	}
	if err := in.Check(netip.MustParseAddr("::ffff:10.1.2.3")); err != nil {
		t.Errorf("allowlisted address in mapped form refused: %v", err)
	}
	if err := in.Check(netip.MustParseAddr("10.2.0.1")); err == nil {
		t.Error("an address outside the allowlist passed")
	}
}

// countingListener is a loopback receiver that counts the connections it
// accepts: the hostile-URL tests send everything there and expect none.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

func newCountingServer(t *testing.T) (*countingListener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	srv.Listener = cl
	srv.Start()
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return cl, port
}

// rebinding answers a name with a public address the first time and with
// loopback after that, as an attacker's DNS server would.
type rebinding struct {
	mu    sync.Mutex
	calls map[string]int
}

func (r *rebinding) lookup(_ context.Context, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[host]++
	names := map[string][]string{
		"localhost":                {"127.0.0.1", "::1"},
		"metadata.google.internal": {"169.254.169.254"},
		"internal.example.com":     {"10.0.0.7"},
		"mixed.example.com":        {"127.0.0.1", "10.0.0.1"},
		"mapped.example.com":       {"::ffff:127.0.0.1"},
		"nat64.example.com":        {"64:ff9b::7f00:1"},
	}
	if host == "rebind.example.com" {
		if r.calls[host] == 1 {
			return []netip.Addr{netip.MustParseAddr("93.184.216.34")}, nil
		}
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	addrs, ok := names[host]
	if !ok {
		// Names an attacker controls resolve to loopback, where the
		// counting receiver listens.
		addrs = []string{"127.0.0.1"}
	}
	out := make([]netip.Addr, len(addrs))
	for i, a := range addrs {
		out[i] = netip.MustParseAddr(a)
	}
	return out, nil
}

// TestSender_HostileURLs sends to URLs aimed at internal services, with a
// receiver listening on loopback where a mistake would land: every attempt
// fails with a refusal or a URL error, and the receiver never sees a
// connection.
func TestSender_HostileURLs(t *testing.T) {
	recv, port := newCountingServer(t)
	r := &rebinding{calls: map[string]int{}}
	s := NewSender(Options{AllowHTTP: true, Lookup: r.lookup, Timeout: 2 * time.Second})
	defer s.Close()
	secret := domain.NewWebhookSecret()
	hostile := []string{
		"http://127.0.0.1:" + port + "/",
		"http://localhost:" + port + "/",
		"http://[::1]:" + port + "/",
		"http://0.0.0.0:" + port + "/",
		"http://127.1:" + port + "/",
		"http://2130706433:" + port + "/",
		"http://0x7f000001:" + port + "/",
		"http://017700000001:" + port + "/",
		"http://[::ffff:127.0.0.1]:" + port + "/",
		"http://[::ffff:7f00:1]:" + port + "/",
		"http://[64:ff9b::7f00:1]:" + port + "/",
		"http://[2002:7f00:1::1]:" + port + "/",
		"http://169.254.169.254/latest/meta-data/",
		"http://metadata.google.internal/computeMetadata/v1/",
		"http://[fd00:ec2::254]/latest/meta-data/",
		"http://100.100.100.200/latest/meta-data/",
		"http://10.0.0.1/", "http://172.16.0.1/", "http://192.168.0.1/",
		"http://internal.example.com:" + port + "/",
		"http://mixed.example.com:" + port + "/",
		"http://mapped.example.com:" + port + "/",
		"http://nat64.example.com:" + port + "/",
		"http://[fe80::1%25lo]:" + port + "/",
		"http://224.0.0.1/",
		"http://rebind.example.com:" + port + "/",
		"http://attacker.example.com:" + port + "/",
		"http://user:pw@example.com/",
		"gopher://127.0.0.1:" + port + "/",
		"file:///etc/passwd",
	}
	if len(hostile) < 15 {
		t.Fatal("the table must hold at least 15 hostile URLs")
	}
	// The rebinding name is looked up once first, as a check at creation
	// would, and answers with a public address.
	if a, _ := r.lookup(t.Context(), "rebind.example.com"); a[0].String() != "93.184.216.34" {
		t.Fatal("rebinding resolver is broken")
	}
	for _, u := range hostile {
		resp := s.Send(t.Context(), domain.WebhookAttempt{
			URL: u, MessageID: "msg_1", Timestamp: time.Now(), Body: []byte(`{}`), Secrets: []string{secret},
		})
		if resp.Err == nil || resp.StatusCode != 0 || resp.Outcome() == domain.WebhookDelivered {
			t.Errorf("%s: status %d, err %v; want it refused", u, resp.StatusCode, resp.Err)
			continue
		}
		t.Logf("%s: %v", u, resp.Err)
		var refused *RefusedError
		if !errors.As(resp.Err, &refused) && domain.ErrorCode(resp.Err) != domain.EINVALID && !strings.Contains(resp.Err.Error(), "resolving") {
			t.Errorf("%s: %v; want a refused address or an invalid URL", u, resp.Err)
		}
	}
	if n := recv.accepted.Load(); n != 0 {
		t.Fatalf("the loopback receiver accepted %d connections; want 0", n)
	}
}

// TestSender_Allowlist reaches a loopback receiver once its prefix is
// allowed, which shows the hostile-URL test would have seen a connection.
func TestSender_Allowlist(t *testing.T) {
	recv, port := newCountingServer(t)
	s := NewSender(Options{AllowHTTP: true, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	defer s.Close()
	resp := s.Send(t.Context(), domain.WebhookAttempt{
		URL: "http://127.0.0.1:" + port + "/hook", MessageID: "msg_1", Timestamp: time.Now(),
		Body: []byte(`{}`), Secrets: []string{domain.NewWebhookSecret()},
	})
	if resp.Err != nil || resp.StatusCode != 204 || recv.accepted.Load() != 1 {
		t.Fatalf("allowlisted receiver: status %d, err %v, %d connections", resp.StatusCode, resp.Err, recv.accepted.Load())
	}
}
