package faulttest

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDiskFull runs one server on SQLite with its data directory on a
// filesystem of 32 MB, fills the filesystem until 3 MB are left, and has a
// command write 14 MB of output while a counter prints a line every 10 ms,
// subscribers following both live; then it frees the space. Output that
// storage refuses is held (the command's writes block) and tried again for
// RDEV_OUTPUT_HOLD: in "lost" the hold is 5 s and runs out, and what could
// not be stored is counted in outputLostBytes (never in truncated); in
// "kept" it is 10 minutes and everything is stored once space is freed.
// Either way no subscriber receives a chunk that was not stored, /readyz
// answers 503 from the first refused write until space is freed and 200
// after, no command is INTERRUPTED, the server answers throughout, and a
// command run after the outage stores all its output. "pending" holds the
// checks that fail until their bug is fixed (disk_full_pending_test.go).
func TestDiskFull(t *testing.T) {
	requireFaults(t)
	t.Run("lost", func(t *testing.T) { testDiskFull(t, "lost", 5*time.Second) })
	t.Run("kept", func(t *testing.T) { testDiskFull(t, "kept", 10*time.Minute) })
	t.Run("pending", func(t *testing.T) {
		t.Run("ended-while-held", testDiskFullEndedWhileHeld)
		t.Run("capped-tail", testDiskFullCappedTail)
	})
}

// The disk-full scenario's disk and commands, whose clientTokens say which
// is which.
const (
	diskSize = "32m"
	diskLeft = 3 << 20
	// The flood writes more than rdev can hold (what fits on the disk, the
	// batch being tried, the pending output and the pipe: 12.5 MB at most),
	// so its writes block until the hold ends; the cap is raised above it,
	// as truncation is not what this is about.
	floodBytes = 14_000_000
	floodLine  = "the disk is full and this line is written all the same\n"
	outputCap  = 64 << 20
	// The counter counts until the test creates stop-counter, after the
	// disk was freed.
	counterShell = "i=0; while [ ! -e stop-counter ]; do i=$((i+1)); echo $i; sleep 0.01; done"
	duringText   = "submitted while the disk was full\n"
	afterLines   = 20000
	// keptOutage is how long the disk stays full in "kept": a few rounds
	// of trying again.
	keptOutage = 3 * time.Second
	lostMetric = "rdev_command_output_lost_bytes_total"
)

// diskFullRun is one rdev on SQLite with its data directory on a small disk,
// the commands it was given, and a subscriber following each from the start.
type diskFullRun struct {
	t       *testing.T
	disk    *smallDisk
	d       *deployment
	r       *replica
	servers *pool
	c       *client
	live    map[string]*follower // by clientToken
}

// startOnSmallDisk starts rdev on a small disk of size, with environment
// extra, and an API key.
func startOnSmallDisk(t *testing.T, size string, extra ...string) *diskFullRun {
	disk := newSmallDisk(t, size)
	d := newDeployment(t, "", append([]string{"CONCURRENT_COMMANDS=4", "RDEV_PER_PROJECT_COMMANDS=4"}, extra...)...)
	d.useDisk(disk)
	r := d.start("a", "")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the server's log:\n%s", r.logTail(30))
		}
	})
	servers := newPool(d.createKey(r), r)
	return &diskFullRun{t: t, disk: disk, d: d, r: r, servers: servers, c: servers.pick(0), live: map[string]*follower{}}
}

// execute submits a command and follows its output from the start.
func (x *diskFullRun) execute(ctx context.Context, shell, token string) *follower {
	x.t.Helper()
	id, err := x.c.execute(ctx, shell, token)
	if err != nil {
		x.t.Fatalf("submitting %s: %v", token, err)
	}
	f := follow(ctx, id, x.servers.all)
	x.live[token] = f
	return f
}

// touch creates the file name in the project, which a command may wait for.
func (x *diskFullRun) touch(name string) {
	x.t.Helper()
	if err := os.WriteFile(filepath.Join(x.d.project(), name), nil, 0o600); err != nil {
		x.t.Fatal(err)
	}
}

// drained waits until no command is queued or running, and for every
// subscriber to end.
func (x *diskFullRun) drained(ctx context.Context) {
	x.t.Helper()
	waitFor(ctx, x.t, "every command to end", func() (bool, error) {
		queued, running, err := x.c.queue(ctx)
		return err == nil && queued == 0 && running == 0, err
	})
	for _, f := range x.live {
		<-f.done
	}
}

func testDiskFull(t *testing.T, name string, hold time.Duration) {
	loses := hold < time.Minute
	x := startOnSmallDisk(t, diskSize, "RDEV_OUTPUT_HOLD="+hold.String(), fmt.Sprintf("RDEV_OUTPUT_CAP=%d", outputCap))
	c := x.c
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	ready := watchReadyz(ctx, c)

	counter := x.execute(ctx, counterShell, "counter")
	waitFor(ctx, t, "the counter to print", func() (bool, error) { return counter.seen.Load() >= 20, nil })
	if err := x.disk.fill(diskLeft); err != nil {
		t.Fatalf("filling the disk: %v", err)
	}
	marker := "rdev-fault-disk-full-" + rand.Text()[:10]
	t.Cleanup(func() { killMarked(marker) })
	x.execute(ctx, fmt.Sprintf(": %s; yes '%s' | head -c %d", marker, strings.TrimSuffix(floodLine, "\n"), floodBytes), "flood")
	waitFor(ctx, t, "/readyz to answer 503", func() (bool, error) { return ready.last() == http.StatusServiceUnavailable, nil })
	refusedAt := time.Now()

	// The server serves while storage refuses writes: it says why, answers
	// reads, and takes a command or refuses it as UNAVAILABLE.
	if h, err := c.health(ctx); err != nil || h["storage writes"] != "DOWN" {
		t.Errorf("health while the disk is full: storage writes %q, %v; want DOWN", h["storage writes"], err)
	}
	if _, _, err := c.queue(ctx); err != nil {
		t.Errorf("reading the queue while the disk is full: %v", err)
	}
	submitsRefused := 0
	if id, err := c.execute(ctx, "echo "+strings.TrimSuffix(duringText, "\n"), "during"); err == nil {
		x.live["during"] = follow(ctx, id, x.servers.all)
	} else if errorCode(err) == "UNAVAILABLE" {
		submitsRefused++
	} else {
		t.Errorf("submitting a command while the disk is full: %v; want it taken, or refused UNAVAILABLE", err)
	}

	// Back-pressure: the flood's processes wait for their output to be
	// taken, until the hold runs out; without it they would end at once.
	var blocked time.Duration
	if loses {
		waitFor(ctx, t, "the flood's held output to be given up and its processes to end", func() (bool, error) {
			return len(marked(marker)) == 0, nil
		})
		if blocked = time.Since(refusedAt); blocked < hold/2 {
			t.Errorf("the flood's processes ended %s after storage refused output, with a hold of %s: its writes did not block", blocked, hold)
		}
	} else {
		// The outage's length is the fault itself, not a wait for a
		// condition.
		select {
		case <-ctx.Done():
		case <-time.After(keptOutage - time.Since(refusedAt)):
		}
		if blocked = time.Since(refusedAt); len(marked(marker)) == 0 {
			t.Errorf("the flood's processes ended while its output was held: its writes did not block")
		}
	}
	if err := x.disk.unfill(); err != nil {
		t.Fatalf("freeing the disk: %v", err)
	}
	freedAt := time.Now()
	waitFor(ctx, t, "/readyz to answer 200 again", func() (bool, error) { return ready.okSince(freedAt), nil })

	after := x.execute(ctx, fmt.Sprintf("seq 1 %d", afterLines), "after")
	select {
	case <-after.done:
	case <-ctx.Done():
	}
	x.touch("stop-counter")
	x.drained(ctx)

	cmds, err := c.commands(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stored := readOutputs(ctx, x.servers, cmds)
	bad := &complaints{t: t}
	var resultsWrong, interrupted, truncated, outputsWrong, lost int
	var lv liveFigures
	for _, cmd := range cmds {
		if cmd.Status != "SUCCEEDED" || cmd.ExitCode == nil || *cmd.ExitCode != 0 {
			resultsWrong++
			if cmd.Status == "INTERRUPTED" {
				interrupted++
			}
			bad.errorf("%s (%s) ended %s, exit code %v: %s", cmd.ID, cmd.ClientToken, cmd.Status, cmd.ExitCode, cmd.Reason)
		}
		if cmd.Truncated {
			truncated++
			bad.errorf("%s (%s) is marked truncated; its output never reached the cap", cmd.ID, cmd.ClientToken)
		}
		lost += cmd.OutputLostBytes
		s := stored[cmd.ID]
		if msg := checkStored(cmd, s, loses); msg != "" {
			outputsWrong++
			bad.errorf("%s (%s): %s", cmd.ID, cmd.ClientToken, msg)
		}
		if f := x.live[cmd.ClientToken]; f != nil {
			lv.add(bad, cmd, f, s.chunks)
		}
	}
	bad.done()
	lostMetricValue, err := c.metric(ctx, lostMetric)
	if err != nil {
		t.Error(err)
	}
	notReady, readyWhileRefused := ready.counts(refusedAt, freedAt)

	logFigures(t, "disk-full-"+name,
		figure{"commands", len(cmds)}, figure{"hold-ms", int(hold.Milliseconds())}, figure{"flood-blocked-ms", int(blocked.Milliseconds())},
		figure{"lost-bytes", lost}, figure{"lost-bytes-metric", int(lostMetricValue)},
		figure{"chunks-live", lv.received}, figure{"chunks-live-never-stored", lv.neverStored},
		figure{"chunks-live-differ", lv.differ}, figure{"chunks-stored-not-live", lv.missed},
		figure{"finished-wrong", lv.finishedWrong}, figure{"subscriber-reconnects", lv.reconnects},
		figure{"readyz-503", notReady}, figure{"readyz-200-while-full", readyWhileRefused},
		figure{"submits-refused", submitsRefused},
		figure{"results-wrong", resultsWrong}, figure{"interrupted", interrupted}, figure{"truncated", truncated},
		figure{"outputs-wrong", outputsWrong},
		figure{"server-warnings", x.r.logCount("level=WARN")}, figure{"server-errors", x.r.logCount("level=ERROR")})
	switch flood := x.live["flood"]; {
	case loses && (flood.fin == nil || flood.fin.OutputLostBytes == 0):
		t.Errorf("the flood's output did not fit, and no loss was recorded: %+v", flood.fin)
	case !loses && lost > 0:
		t.Errorf("%d bytes of output lost although they were held for longer than the outage", lost)
	}
	if lost != int(lostMetricValue) {
		t.Errorf("commands record %d bytes lost, %s says %v", lost, lostMetric, lostMetricValue)
	}
	if lv.neverStored > 0 || lv.differ > 0 {
		t.Errorf("live subscribers received %d chunks that were never stored and %d that differ from storage", lv.neverStored, lv.differ)
	}
	if readyWhileRefused > 0 {
		t.Errorf("/readyz answered 200 %d times between the first refused write and freeing the disk", readyWhileRefused)
	}
}
