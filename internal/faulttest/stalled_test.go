package faulttest

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// The stalled-subscribers scenario's sizes.
const (
	stalledSubscriptions = 100 // RDEV_MAX_SUBSCRIPTIONS_PER_CONNECTION's default
	stalledBytes         = 2_000_000_000
	stalledLine          = "stalled subscribers"
	stalledMemLimit      = "300MiB"
	// What the stalled subscriptions may cost over the same command with
	// nobody watching, and what the server may hold in all. Heap in use
	// sampled from outside counts garbage not yet collected too, so these
	// bounds leave room over the 100 MiB that BenchmarkStalledSubscribers
	// measures after a collection (20-75 MiB); without the bound, the
	// subscriptions held over 900 MiB.
	stalledMaxHeld = 160 << 20
	stalledMaxHeap = 250 << 20
	// Goroutines the server may keep over its count before the connection,
	// once the connection is gone: idle database connections, timers.
	goroutineMargin = 10
)

// TestStalledSubscribers runs one server on SQLite under a Go memory limit of
// 300 MiB, as a small container would set, and a command that writes 2 GB,
// first with nobody watching and then with one graphql-transport-ws
// connection holding 100 commandOutput subscriptions of it that joined once
// it was running and never read: the kernel's socket buffers fill and the
// server's writes to the connection block. Meanwhile it samples the server's
// heap in use (/metrics) and resident set (/proc). Each subscriber's output
// is bounded by RDEV_SUBSCRIBER_BUFFER (1 MiB), so the subscriptions may
// hold at most 160 MiB of heap over the run with nobody watching, and the
// server 250 MiB in all (see stalledMaxHeld); the command ends SUCCEEDED with all its output,
// the server answers queries while the connection is stalled, and once the
// connection is closed its goroutines come back to what they were. How much
// the stalled subscriptions slow the command is a figure, not a check. The
// server collects garbage more often than by default (GOGC=25), so that its
// heap in use, sampled from outside, is close to what is live rather than
// what awaits collection under the memory limit.
func TestStalledSubscribers(t *testing.T) {
	requireFaults(t)
	d := newDeployment(t, "", "GOMEMLIMIT="+stalledMemLimit, "GOGC=25")
	r := d.start("a", "")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the server's log:\n%s", r.logTail(30))
		}
	})
	c := &client{url: r.url, token: d.createKey(r)}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	shell := fmt.Sprintf("yes '%s' | head -c %d", stalledLine, stalledBytes)

	// The command with nobody watching: its duration, and the heap the
	// server needs to run it, the baseline.
	mem := watchMemory(ctx, c, r.cmd.Process.Pid)
	alone := runToEnd(ctx, t, c, shell, "alone", nil)
	baseline := mem.stop()

	goroutinesBefore := mustMetric(ctx, t, c, "go_goroutines")
	mem = watchMemory(ctx, c, r.cmd.Process.Pid)
	var conn *websocket.Conn
	stalled := runToEnd(ctx, t, c, shell, "stalled", func(id string) {
		// Joining a running command, each subscription first catches
		// up from storage: before the budget, that read held the whole
		// stored head per subscriber.
		waitFor(ctx, t, "the command to store 100 chunks", func() (bool, error) {
			cmd, err := c.commandByID(ctx, id)
			return err == nil && (cmd.LastSeq >= 100 || cmd.final()), err
		})
		conn = subscribeStalled(ctx, t, c, id, stalledSubscriptions)
		waitFor(ctx, t, "the subscriptions to run", func() (bool, error) {
			n, err := c.metric(ctx, "rdev_graphql_subscriptions")
			return n >= stalledSubscriptions, err
		})
		// The server answers others while it cannot write to the
		// stalled connection.
		cmd, err := c.commandByID(ctx, id)
		switch {
		case err != nil:
			t.Errorf("querying the command while the connection is stalled: %v", err)
		case cmd.final():
			t.Fatalf("the command ended (%s) before the subscriptions ran: make it write more", cmd.Status)
		}
	})
	// Had the server already given up on the connection (it does after a
	// write has waited 10 s), the memory it held would be gone.
	stillSubscribed, _ := c.metric(ctx, "rdev_graphql_subscriptions")
	peak := mem.stop()
	_ = conn.Close()

	var goroutinesAfter float64
	waitFor(ctx, t, "the server's goroutines to come back once the connection is closed", func() (bool, error) {
		n, err := c.metric(ctx, "go_goroutines")
		goroutinesAfter = n
		return err == nil && n <= goroutinesBefore+goroutineMargin, err
	})

	mib := func(b float64) int { return int(b / (1 << 20)) }
	logFigures(t, "stalled-subscribers",
		figure{"subscriptions", stalledSubscriptions}, figure{"subscribed-at-end", int(stillSubscribed)},
		figure{"peak-heap-mib", mib(peak.heap)}, figure{"baseline-heap-mib", mib(baseline.heap)},
		figure{"held-heap-mib", mib(peak.heap - baseline.heap)},
		figure{"peak-rss-mib", mib(peak.rss)}, figure{"baseline-rss-mib", mib(baseline.rss)},
		figure{"duration-ms-alone", alone.DurationMs}, figure{"duration-ms-stalled", stalled.DurationMs},
		figure{"ratio-x100", 100 * stalled.DurationMs / max(alone.DurationMs, 1)},
		figure{"goroutines-before", int(goroutinesBefore)}, figure{"goroutines-after", int(goroutinesAfter)},
		figure{"samples", peak.samples})

	if baseline.samples == 0 || peak.samples == 0 {
		t.Fatalf("/metrics answered %d times during the run alone and %d beside the stalled connection", baseline.samples, peak.samples)
	}
	if peak.heap > stalledMaxHeap {
		t.Errorf("peak heap in use %d MiB beside %d stalled subscriptions, want at most %d MiB",
			mib(peak.heap), stalledSubscriptions, stalledMaxHeap>>20)
	}
	if held := peak.heap - baseline.heap; held > stalledMaxHeld {
		// Heap in use counts garbage not yet collected as well: what the
		// subscriptions hold is less, and this bound is the target.
		t.Errorf("the stalled subscriptions held %d MiB of heap over the command alone (%d MiB), want at most %d MiB",
			mib(held), mib(baseline.heap), stalledMaxHeld>>20)
	}
}

// runToEnd runs shell to its end under clientToken and checks that it
// SUCCEEDED with all its output; unless nil, beside is called with its ID
// once it was submitted.
func runToEnd(ctx context.Context, t *testing.T, c *client, shell, clientToken string, beside func(id string)) commandTiming {
	t.Helper()
	id, err := c.execute(ctx, shell, clientToken)
	if err != nil {
		t.Fatalf("submitting %s: %v", clientToken, err)
	}
	if beside != nil {
		beside(id)
	}
	var cmd commandTiming
	waitFor(ctx, t, "the command ("+clientToken+") to end", func() (bool, error) {
		cmd, err = c.commandByID(ctx, id)
		return err == nil && cmd.final(), err
	})
	if cmd.Status != "SUCCEEDED" || cmd.OutputBytes != stalledBytes {
		t.Errorf("%s (%s) ended %s with %d bytes of output (%s), want SUCCEEDED with %d",
			id, clientToken, cmd.Status, cmd.OutputBytes, cmd.Reason, stalledBytes)
	}
	return cmd
}

// commandTiming is a command with how long it ran.
type commandTiming struct {
	command
	DurationMs int
}

// commandByID returns the command id, with how long it ran.
func (c *client) commandByID(ctx context.Context, id string) (commandTiming, error) {
	var out struct{ Command commandTiming }
	err := c.do(ctx, `query($id: ID!) { command(id: $id) { `+commandFields+` durationMs } }`, map[string]any{"id": id}, &out)
	return out.Command, err
}

func mustMetric(ctx context.Context, t *testing.T, c *client, name string) float64 {
	t.Helper()
	v, err := c.metric(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// subscribeStalled opens one graphql-transport-ws connection and starts n
// commandOutput subscriptions of command id on it; after the
// connection_ack nothing more is read from it, and its socket's receive
// buffer is made small so that the server's writes block early.
func subscribeStalled(ctx context.Context, t *testing.T, c *client, id string, n int) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{
		Subprotocols:     []string{"graphql-transport-ws"},
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   1024,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(4096)
			}
			return conn, err
		},
	}
	conn, res, err := d.DialContext(ctx, "ws"+strings.TrimPrefix(c.url, "http")+"/graphql", nil)
	if err != nil {
		t.Fatalf("dialing the stalled connection: %v", err)
	}
	_ = res.Body.Close()
	t.Cleanup(func() { _ = conn.Close() })
	if err := conn.WriteJSON(map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer " + c.token}}); err != nil {
		t.Fatal(err)
	}
	var ack struct{ Type string }
	if err := conn.ReadJSON(&ack); err != nil || ack.Type != "connection_ack" {
		t.Fatalf("connection_init: %v, got %q", err, ack.Type)
	}
	for i := range n {
		if err := conn.WriteJSON(map[string]any{"id": strconv.Itoa(i + 1), "type": "subscribe", "payload": map[string]any{
			"query":     `subscription($id: ID!) { commandOutput(commandId: $id) { __typename ... on OutputChunk { seq data } ... on CommandFinished { status } } }`,
			"variables": map[string]any{"id": id},
		}}); err != nil {
			t.Fatalf("subscription %d: %v", i+1, err)
		}
	}
	return conn
}

// memPeaks are the most memory a server was seen to hold, and how many
// samples of /metrics that is from.
type memPeaks struct {
	heap, rss float64
	samples   int
}

// memWatch samples a server's memory until stopped.
type memWatch struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	peaks  memPeaks
}

// watchMemory samples the heap in use of the server c speaks to
// (go_memstats_heap_inuse_bytes) and the resident set of its process pid
// (VmRSS) every 50 ms, keeping the peaks.
func watchMemory(ctx context.Context, c *client, pid int) *memWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &memWatch{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			heap, err := c.metric(ctx, "go_memstats_heap_inuse_bytes")
			rss := vmRSS(pid)
			w.mu.Lock()
			if err == nil {
				w.peaks.heap = max(w.peaks.heap, heap)
				w.peaks.samples++
			}
			w.peaks.rss = max(w.peaks.rss, rss)
			w.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return w
}

// stop ends the sampling and returns the peaks.
func (w *memWatch) stop() memPeaks {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.peaks
}

// vmRSS returns the resident set of process pid in bytes, 0 if it cannot
// be read.
func vmRSS(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			if err == nil {
				return kb * 1024
			}
		}
	}
	return 0
}
