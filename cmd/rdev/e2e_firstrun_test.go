package main_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A first run in embedded mode listens on this machine only and says so;
// RDEV_HOST exposes it.
func TestE2E_FirstRunBindsLoopback(t *testing.T) {
	t.Run("Default", func(t *testing.T) {
		s := newInstance(t).serveWith(nil, "--port", "0")
		port := strings.TrimPrefix(s.url, "http://127.0.0.1:")
		if port == s.url {
			t.Fatalf("listening at %s, want 127.0.0.1", s.url)
		}
		// serve returns at the banner's first line: wait for the rest.
		if !s.waitOutput("GraphQL:  http://127.0.0.1:"+port+"/graphql") ||
			!strings.Contains(s.output(), "(this machine only: --host 0.0.0.0 or RDEV_HOST=0.0.0.0 exposes it to the network)") {
			t.Errorf("banner does not say who can reach it:\n%s", s.output())
		}
		// From another address of this machine, nothing answers.
		if ip := externalIP(t); ip != nil {
			conn, err := net.DialTimeout("tcp", net.JoinHostPort(ip.String(), port), 2*time.Second)
			if err == nil {
				_ = conn.Close()
				t.Errorf("%s:%s accepted a connection; want loopback only", ip, port)
			}
		}
	})
	t.Run("Exposed", func(t *testing.T) {
		s := newInstance(t, "RDEV_HOST=0.0.0.0").serveWith(nil, "--port", "0")
		if !strings.Contains(s.output(), "(every network interface)") {
			t.Errorf("banner:\n%s", s.output())
		}
		_, port, _ := net.SplitHostPort(strings.TrimPrefix(s.url, "http://"))
		if ip := externalIP(t); ip != nil {
			conn, err := net.DialTimeout("tcp", net.JoinHostPort(ip.String(), port), 2*time.Second)
			if err != nil {
				t.Errorf("RDEV_HOST=0.0.0.0 but %s:%s refused: %v", ip, port, err)
			} else {
				_ = conn.Close()
			}
		}
	})
}

// externalIP returns an address of this machine other than loopback, or
// nil (with a note) if it has none.
func externalIP(t *testing.T) net.IP {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP
		}
	}
	t.Log("no address besides loopback: the network side is not checked")
	return nil
}

// Logs are text for a person at a terminal and JSON for a collector,
// unless RDEV_LOG_FORMAT says which.
func TestE2E_LogFormat(t *testing.T) {
	t.Run("TerminalText", func(t *testing.T) {
		slave, shown := openPTY(t)
		s := newInstance(t, "RDEV_LOG_FORMAT=auto").serveWith(slave, "--host", "127.0.0.1", "--port", "0")
		_ = slave.Close() // the server holds its own copy
		waitFor(t, "a log line on the terminal", func() bool { return strings.Contains(shown(), "msg=\"rdev serving\"") })
		if strings.Contains(shown(), `{"time"`) {
			t.Errorf("JSON on a terminal:\n%s", shown())
		}
		s.stop()
	})
	t.Run("PipeJSON", func(t *testing.T) {
		s := newInstance(t, "RDEV_LOG_FORMAT=auto").serve()
		if !s.waitOutput(`{"time":`) || !s.waitOutput(`"msg":"rdev serving"`) {
			t.Errorf("not JSON on a pipe:\n%s", s.output())
		}
	})
	t.Run("ForcedJSONOnTerminal", func(t *testing.T) {
		slave, shown := openPTY(t)
		s := newInstance(t, "RDEV_LOG_FORMAT=json").serveWith(slave, "--host", "127.0.0.1", "--port", "0")
		_ = slave.Close()
		waitFor(t, "a JSON log line on the terminal", func() bool { return strings.Contains(shown(), `"msg":"rdev serving"`) })
		s.stop()
	})
}

// openPTY opens a pseudo-terminal: slave is what the server gets as its
// stderr, and shown returns what the terminal has shown so far.
func openPTY(t *testing.T) (slave *os.File, shown func() string) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { _ = master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = slave.Close() })
	var mu sync.Mutex
	var out bytes.Buffer
	go func() { _, _ = io.Copy(&lockedWriter{mu: &mu, w: &out}, master) }()
	return slave, func() string {
		mu.Lock()
		defer mu.Unlock()
		return out.String()
	}
}

// waitFor fails t unless cond holds within 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 10s", what)
		}
	}
}
