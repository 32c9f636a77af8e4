package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rdev-hq/rdev/domain"
)

// streamMessage is one graphql-transport-ws message of a commandOutput stream.
type streamMessage struct {
	Type    string `json:"type"`
	Payload struct {
		Data struct {
			CommandOutput struct {
				Typename string `json:"__typename"`
				Seq      int64  `json:"seq"`
				Data     string `json:"data"`
				Status   string `json:"status"`
			} `json:"commandOutput"`
		} `json:"data"`
	} `json:"payload"`
}

// follow subscribes to a command's chunks and calls chunk for each until
// the stream completes; it returns the final status.
func (ts *testServer) follow(tb testing.TB, id string, chunk func(data string)) string {
	tb.Helper()
	c := ts.subscribeData(tb, id)
	defer func() { _ = c.Close() }()
	return readStream(tb, c, chunk)
}

func (ts *testServer) subscribeData(tb testing.TB, id string) *websocket.Conn {
	tb.Helper()
	return ts.subscribeMany(tb, id, 1)
}

func readStream(tb testing.TB, c *websocket.Conn, chunk func(data string)) string {
	status := ""
	for {
		_, r, err := c.NextReader()
		if err != nil {
			tb.Errorf("read: %v", err)
			return status
		}
		var m streamMessage
		if err := json.NewDecoder(r).Decode(&m); err != nil {
			tb.Errorf("decode: %v", err)
			return status
		}
		switch m.Type {
		case "next":
			if o := m.Payload.Data.CommandOutput; o.Typename == "OutputChunk" {
				chunk(o.Data)
			} else {
				status = o.Status
			}
		case "complete":
			return status
		case "ping":
			_ = c.WriteJSON(map[string]any{"type": "pong"})
		case "error":
			tb.Errorf("subscription error: %+v", m)
			return status
		}
	}
}

// BenchmarkOutputThroughput compares the bytes per second a subscriber
// receives of a command's output with the baseline of reading the same
// command's output straight from its pipe. Each op runs the baseline and
// then the command through rdev (until its output is received and storage
// has checkpointed it), so both see the machine in the same state; "x-pipe"
// is the subscription's throughput over the pipe's. "subscription"
// runs with the default output cap (10 MiB: the first 9 MiB and the last
// 1 MiB are stored, the middle only sent live); "subscription,stored=all"
// raises the cap so that every byte is stored as well.
func BenchmarkOutputThroughput(b *testing.B) {
	const lines = 5_000_000 // about 38 MB
	argv := []string{"seq", "1", strconv.Itoa(lines)}
	for _, bm := range []struct {
		name string
		env  map[string]string
	}{
		{"subscription", nil},
		{"subscription,stored=all", map[string]string{"RDEV_OUTPUT_CAP": strconv.Itoa(64 << 20)}},
	} {
		b.Run(bm.name, func(b *testing.B) {
			ts := startTestServer(b, bm.env)
			var piped, sent int64
			var pipeTime, sendTime time.Duration
			for b.Loop() {
				start := time.Now()
				piped += readPipe(b, argv)
				pipeTime += time.Since(start)
				start = time.Now()
				id := ts.execute(b, map[string]any{"projectId": "demo", "argv": argv})
				sent += ts.drain(b, id)
				// Storage's deferred work, copying the WAL into the database,
				// is done on the clock too, rather than during the next
				// baseline.
				if _, err := ts.store.DB().ExecContext(b.Context(), "PRAGMA wal_checkpoint(PASSIVE)"); err != nil {
					b.Fatal(err)
				}
				sendTime += time.Since(start)
			}
			pipeRate := float64(piped) / pipeTime.Seconds() / 1e6
			sendRate := float64(sent) / sendTime.Seconds() / 1e6
			b.ReportMetric(pipeRate, "pipe-MB/s")
			b.ReportMetric(sendRate, "MB/s")
			b.ReportMetric(sendRate/pipeRate, "x-pipe")
		})
	}
}

// readPipe runs argv and reads its output straight from the pipe, as fast
// as it comes, returning how many bytes there were.
func readPipe(tb testing.TB, argv []string) int64 {
	tb.Helper()
	cmd := exec.CommandContext(context.Background(), argv[0], argv[1:]...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	n, err := discard(out, make([]byte, readSize))
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		tb.Fatal(err)
	}
	return n
}

// readSize is how much the benchmarks' readers ask for at once, of the pipe
// and of a WebSocket message alike.
const readSize = 64 << 10

// discard reads r to its end into buf and returns how many bytes there
// were. It reads into buf itself: io.Copy to io.Discard would read in
// io.Discard's 8 KiB buffers.
func discard(r io.Reader, buf []byte) (int64, error) {
	var total int64
	for {
		n, err := r.Read(buf)
		total += int64(n)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// drain reads a command's whole output stream as a thin client would:
// frames are read into one reused buffer and not decoded, as the pipe
// baseline discards its bytes, so the client (sharing the machine) costs
// little. It returns the output bytes, from the command's lastSeq chunks'
// total as the server reports it.
func (ts *testServer) drain(tb testing.TB, id string) int64 {
	tb.Helper()
	c := ts.subscribeData(tb, id)
	defer func() { _ = c.Close() }()
	buf := make([]byte, readSize)
	for {
		_, r, err := c.NextReader()
		if err != nil {
			tb.Fatalf("read: %v", err)
		}
		// The message type is within the first bytes; the rest is skipped.
		head, err := io.ReadFull(r, buf[:64])
		if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
			tb.Fatalf("read: %v", err)
		}
		if strings.Contains(string(buf[:head]), `"type":"complete"`) {
			break
		}
		if strings.Contains(string(buf[:head]), `"type":"error"`) {
			rest, _ := io.ReadAll(r)
			tb.Fatalf("subscription error: %s%s", buf[:head], rest)
		}
		if _, err := discard(r, buf); err != nil {
			tb.Fatalf("read: %v", err)
		}
	}
	cmd, err := ts.commands.Get(domain.NewOperatorContext(context.Background()), id)
	if err != nil || cmd.Status != domain.CommandSucceeded {
		tb.Fatalf("command %v: %v", cmd, err)
	}
	return cmd.OutputBytes
}

// BenchmarkLineLatency measures the time from a process writing a line to
// a subscriber receiving it; each line carries its write time.
func BenchmarkLineLatency(b *testing.B) {
	ts := startTestServer(b, nil)
	var lat []time.Duration
	for b.Loop() {
		id := ts.execute(b, map[string]any{"projectId": "demo", "shell": `for i in $(seq 1 200); do date +%s%N; sleep 0.002; done`})
		ts.follow(b, id, func(d string) {
			now := time.Now()
			for _, l := range strings.Fields(d) {
				if ns, err := strconv.ParseInt(l, 10, 64); err == nil {
					lat = append(lat, now.Sub(time.Unix(0, ns)))
				}
			}
		})
	}
	slices.Sort(lat)
	if len(lat) == 0 {
		b.Fatal("no lines")
	}
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkFanOut has 1,000 subscribers follow one command printing 2,000
// lines and reports lines delivered per second across all of them, timed
// from the command's first line to the last subscriber's end.
func BenchmarkFanOut(b *testing.B) {
	const subscribers, lines = 1000, 2000
	// Each subscriber has a socket of its own, all of one key.
	ts := startTestServer(b, map[string]string{"RDEV_MAX_SOCKETS_PER_KEY": "0", "RDEV_MAX_SUBSCRIPTIONS_PER_KEY": "0"})
	gate := filepath.Join(ts.cfg.Workspace, "demo", "fanout.go")
	var delivered, messages int64
	var elapsed time.Duration
	var mu sync.Mutex
	for b.Loop() {
		_ = os.Remove(gate)
		id := ts.execute(b, map[string]any{"projectId": "demo", "shell": "while [ ! -f fanout.go ]; do sleep 0.01; done; seq 1 " + strconv.Itoa(lines)})
		conns := make([]*websocket.Conn, subscribers)
		for i := range conns {
			conns[i] = ts.subscribeData(b, id)
		}
		var wg sync.WaitGroup
		for _, c := range conns {
			wg.Go(func() {
				var n, m int64
				readStream(b, c, func(d string) { n, m = n+int64(strings.Count(d, "\n")), m+1 })
				_ = c.Close()
				mu.Lock()
				delivered, messages = delivered+n, messages+m
				mu.Unlock()
			})
		}
		start := time.Now()
		if err := os.WriteFile(gate, nil, 0o600); err != nil {
			b.Fatal(err)
		}
		wg.Wait()
		elapsed += time.Since(start)
	}
	if want := int64(b.N) * subscribers * lines; delivered != want {
		b.Fatalf("delivered %d lines, want %d", delivered, want)
	}
	b.ReportMetric(float64(delivered)/elapsed.Seconds(), "lines/s")
	b.ReportMetric(float64(messages)/elapsed.Seconds(), "msgs/s")
}

// serverMemory is the heap and stack memory in use in this process after a
// collection.
func serverMemory() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse + m.StackInuse)
}

// withClients runs this test binary as a client process holding n
// connections (subscribed to commandID unless it is ""), and returns the
// server memory measured while they are open.
func (ts *testServer) withClients(b *testing.B, n int, commandID string) int64 {
	b.Helper()
	cmd := exec.CommandContext(context.Background(), os.Args[0])
	cmd.Env = append(os.Environ(), fmt.Sprintf("RDEV_BENCH_CLIENT=%s %s %d %s", ts.url, ts.token, n, commandID))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		b.Fatalf("client: %q", line)
	}
	mem := serverMemory()
	_ = stdin.Close()
	_ = cmd.Wait()
	return mem
}

// BenchmarkIdleSubscriptionMemory reports the server memory (heap and
// stacks, after GC) of one idle commandOutput subscription, and of one bare
// authenticated WebSocket connection as the baseline, with 1,000 of each
// held open by a separate client process.
func BenchmarkIdleSubscriptionMemory(b *testing.B) {
	const n = 1000
	ts := startTestServer(b, map[string]string{"RDEV_MAX_SOCKETS_PER_KEY": "0", "RDEV_MAX_SUBSCRIPTIONS_PER_KEY": "0"})
	id := ts.execute(b, map[string]any{"projectId": "demo", "argv": []string{"sleep", "600"}})
	var conn, sub float64
	for b.Loop() {
		before := serverMemory()
		conns := ts.withClients(b, n, "")
		waitFor(10*time.Second, func() bool { return runtime.NumGoroutine() < 100 })
		subs := ts.withClients(b, n, id)
		conn += float64(conns-before) / n
		sub += float64(subs-before) / n
	}
	b.ReportMetric(conn/float64(b.N), "B/conn")
	b.ReportMetric(sub/float64(b.N), "B/sub")
	b.ReportMetric((sub-conn)/float64(b.N), "B/sub-over-conn")
}

// BenchmarkStalledSubscribers measures what subscribers that never read
// cost the server and the command they follow: one graphql-transport-ws
// connection holds 100 commandOutput subscriptions of a command that writes
// 2 GB, and reads nothing. They subscribe before the command writes
// ("from-start"), or while it runs, once most of the output it stores (the
// head, RDEV_OUTPUT_CAP) is stored, so each first catches up from storage
// ("joining"). Each op runs the command first with no subscriber, then
// beside the stalled subscriptions, under a 300 MiB Go memory limit as a
// small container would set. It reports the server memory (heap and stacks
// in use after a collection) the stalled subscriptions hold once the
// command has ended, and the command's throughput beside them over its
// throughput alone (x-nosub). Both runs are timed from the command being
// let go (it waits on a FIFO until then) to its end as the server recorded
// it.
func BenchmarkStalledSubscribers(b *testing.B) {
	const subscribers, size = 100, 2_000_000_000
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(300 << 20))
	ts := startTestServer(b, nil)
	gate := filepath.Join(ts.cfg.Workspace, "demo", "stalled.fifo")
	if err := syscall.Mkfifo(gate, 0o600); err != nil {
		b.Fatal(err)
	}
	input := map[string]any{"projectId": "demo", "shell": "read -r _ < stalled.fifo; yes 'stalled subscribers' | head -c " + strconv.Itoa(size)}
	for _, joining := range []bool{false, true} {
		name := "from-start"
		if joining {
			name = "joining"
		}
		b.Run(name, func(b *testing.B) {
			var alone, beside time.Duration
			var held int64
			for b.Loop() {
				alone += ts.runGated(b, input, gate, nil)
				runtime.GC()
				goroutines := runtime.NumGoroutine()
				before := serverMemory()
				var c *websocket.Conn
				beside += ts.runGated(b, input, gate, func(id string, running bool) {
					switch {
					case !joining && !running:
						c = ts.subscribeMany(b, id, subscribers)
						topic := domain.CommandTopic(id)
						if !waitFor(time.Minute, func() bool { return ts.hub.Subscribers(topic) == subscribers }) {
							b.Fatalf("%d of %d subscriptions reached the hub", ts.hub.Subscribers(topic), subscribers)
						}
					case joining && running:
						ts.waitForStored(b, id, 100)
						c = ts.subscribeMany(b, id, subscribers)
					}
				})
				held += serverMemory() - before

				// The stalled operations are still running: had the server
				// given up on the connection, its memory would be gone and
				// the figure meaningless.
				if n := runtime.NumGoroutine() - goroutines; n < subscribers {
					b.Fatalf("%d goroutines more than before the subscriptions, want at least %d: the connection ended early", n, subscribers)
				}
				_ = c.Close()
				if !waitFor(time.Minute, func() bool { return runtime.NumGoroutine() <= goroutines+5 }) {
					b.Fatalf("%d goroutines after closing the connection, %d before", runtime.NumGoroutine(), goroutines)
				}
			}
			n := float64(b.N)
			b.ReportMetric(float64(held)/n/(1<<20), "held-MiB")
			b.ReportMetric(float64(size)*n/alone.Seconds()/1e6, "alone-MB/s")
			b.ReportMetric(float64(size)*n/beside.Seconds()/1e6, "MB/s")
			b.ReportMetric(alone.Seconds()/beside.Seconds(), "x-nosub")
		})
	}
}

// runGated queues input, a command that first reads a line from the FIFO
// gate, lets it go and waits for it to succeed. Unless nil, subscribe is
// called with the command's ID before it is let go (running false) and
// after (running true). It returns the time from letting the command go to
// its end as the server recorded it.
func (ts *testServer) runGated(tb testing.TB, input map[string]any, gate string, subscribe func(id string, running bool)) time.Duration {
	tb.Helper()
	id := ts.execute(tb, input)
	if subscribe != nil {
		subscribe(id, false)
	}
	// Opening a FIFO to write fails until its reader, the command, has
	// opened it.
	var f *os.File
	if !waitFor(time.Minute, func() bool {
		var err error
		f, err = os.OpenFile(gate, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		return err == nil
	}) {
		tb.Fatal("the command did not open its gate")
	}
	start := time.Now()
	_, err := f.WriteString("go\n")
	_ = f.Close()
	if err != nil {
		tb.Fatal(err)
	}
	if subscribe != nil {
		subscribe(id, true)
	}
	var cmd *domain.Command
	ctx := domain.NewOperatorContext(context.Background())
	waitFor(10*time.Minute, func() bool {
		cmd, err = ts.commands.Get(ctx, id)
		return err != nil || cmd.Status.Final()
	})
	if err != nil || cmd.Status != domain.CommandSucceeded || cmd.FinishedAt == nil {
		tb.Fatalf("command %+v: %v", cmd, err)
	}
	return cmd.FinishedAt.Sub(start)
}

// waitForStored waits until storage holds more than n chunks of a
// command's output.
func (ts *testServer) waitForStored(tb testing.TB, id string, n int64) {
	tb.Helper()
	if !waitFor(time.Minute, func() bool {
		chunks, err := ts.store.ReadOutput(context.Background(), id, n, 1, 0)
		return err == nil && len(chunks) > 0
	}) {
		tb.Fatalf("storage did not get %d chunks of command %s", n+1, id)
	}
}

// subscribeMany opens one graphql-transport-ws connection and sends n
// commandOutput subscriptions of a command on it. Nothing more is read
// from it.
func (ts *testServer) subscribeMany(tb testing.TB, id string, n int) *websocket.Conn {
	tb.Helper()
	d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}}
	c, res, err := d.Dial("ws"+ts.url[len("http"):]+"/graphql", nil)
	if err != nil {
		tb.Fatal(err)
	}
	_ = res.Body.Close()
	_ = c.WriteJSON(map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer " + ts.token}})
	var ack streamMessage
	if err := c.ReadJSON(&ack); err != nil || ack.Type != "connection_ack" {
		tb.Fatalf("init: %v %q", err, ack.Type)
	}
	for i := range n {
		_ = c.WriteJSON(map[string]any{"id": strconv.Itoa(i + 1), "type": "subscribe", "payload": map[string]any{
			"query":     `subscription($id: ID!) { commandOutput(commandId: $id) { __typename ... on OutputChunk { seq data } ... on CommandFinished { status } } }`,
			"variables": map[string]any{"id": id},
		}})
	}
	return c
}
