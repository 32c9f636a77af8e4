package faulttest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/internal/testenv"
)

// TestDatabaseRestart restarts the database with `pg_ctl restart -m fast`,
// and in a second run `-m immediate` (a crash: no checkpoint, recovery from
// the WAL), while one replica runs several hundred commands and
// subscribers follow the longest ones live. Every command must end
// SUCCEEDED with exit code 0 and its whole output stored, and every
// subscriber must get every line once: the restart is an outage of a
// second or two, which rdev rides out by retrying.
func TestDatabaseRestart(t *testing.T) {
	requireFaults(t)
	for _, mode := range []string{"fast", "immediate"} {
		t.Run(mode, func(t *testing.T) { testDatabaseRestart(t, mode) })
	}
}

func testDatabaseRestart(t *testing.T, mode string) {
	const (
		shorts      = 300 // echo a; sleep 0.1; echo b
		counters    = 4   // a line every 10 ms for about 2 s
		counterTo   = 200
		concurrency = 8
	)
	pg := testenv.StartPGCluster(t)
	d := newDeployment(t, pg.URL(), "RDEV_LEASE_TTL=5s",
		"CONCURRENT_COMMANDS="+strconv.Itoa(concurrency), "RDEV_PER_PROJECT_COMMANDS="+strconv.Itoa(concurrency))
	r := d.start("a", "")
	servers := newPool(d.createKey(r), r)
	c := servers.pick(0)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	counterShell := fmt.Sprintf("i=0; while [ $i -lt %d ]; do i=$((i+1)); echo $i; sleep 0.01; done", counterTo)
	counterText := countTo(counterTo)
	want := func(cmd command) string {
		if strings.HasPrefix(cmd.ClientToken, "count-") {
			return counterText
		}
		return "a\nb\n"
	}

	// The counters first, each followed live; then the short commands, in
	// the background, retried with the same clientToken while the
	// database is down.
	var submitRetries atomic.Int64
	followers := make([]*follower, counters)
	for i := range counters {
		var id string
		failed, err := retry(ctx, func() (err error) {
			id, err = c.execute(ctx, counterShell, fmt.Sprintf("count-%d", i))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		submitRetries.Add(int64(failed))
		followers[i] = follow(ctx, id, servers.all)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < shorts; i = int(next.Add(1)) - 1 {
				failed, err := retry(ctx, func() error {
					_, err := c.execute(ctx, "echo a; sleep 0.1; echo b", fmt.Sprintf("short-%d", i))
					return err
				})
				submitRetries.Add(int64(failed))
				if err != nil {
					t.Errorf("submitting command %d: %v", i, err)
					return
				}
			}
		})
	}

	waitFor(ctx, t, "the counters to be a sixth of the way", func() (bool, error) {
		for _, f := range followers {
			if f.seen.Load() < counterTo/6 {
				return false, nil
			}
		}
		return true, nil
	})
	began := time.Now()
	if err := pg.Restart(mode); err != nil {
		t.Fatalf("pg_ctl restart -m %s: %v\n%s", mode, err, pg.LogTail(20))
	}
	outage := time.Since(began)
	wg.Wait()

	waitFor(ctx, t, "the queue to drain", func() (bool, error) {
		queued, running, err := c.queue(ctx)
		return err == nil && queued == 0 && running == 0, err
	})
	var cmds []command
	if _, err := retry(ctx, func() (err error) { cmds, err = c.commands(ctx); return err }); err != nil {
		t.Fatal(err)
	}

	bad := &complaints{t: t}
	var resultsWrong, interrupted, linesLost, outputsWrong int
	outputs := readOutputs(ctx, servers, cmds)
	for _, cmd := range cmds {
		if cmd.Status != "SUCCEEDED" || cmd.ExitCode == nil || *cmd.ExitCode != 0 {
			resultsWrong++
			if cmd.Status == "INTERRUPTED" {
				interrupted++
			}
			bad.errorf("%s (%s) ended %s, exit code %v: %s", cmd.ID, cmd.ClientToken, cmd.Status, cmd.ExitCode, cmd.Reason)
		}
		f := outputs[cmd.ID]
		got, gaps, repeats := text(f.chunks)
		if f.err != nil || got != want(cmd) || gaps > 0 || repeats > 0 {
			outputsWrong++
			linesLost += missingLines(got, want(cmd))
			bad.errorf("output of %s (%s): %d bytes, %d seqs missing, %d repeated, %d lines missing (stream error: %v)",
				cmd.ID, cmd.ClientToken, len(got), gaps, repeats, missingLines(got, want(cmd)), f.err)
		}
	}
	bad.done()

	var subLost, subRepeats, reconnects int
	for _, f := range followers {
		<-f.done
		got, _, repeats := text(f.chunks)
		subLost += missingLines(got, counterText)
		subRepeats += repeats
		reconnects += f.reconnects
		if f.err != nil {
			t.Errorf("subscriber of %s: %v", f.id, f.err)
		}
	}

	logFigures(t, "database-restart-"+mode,
		figure{"commands", len(cmds)}, figure{"outage-ms", int(outage.Milliseconds())}, figure{"submit-retries", int(submitRetries.Load())},
		figure{"results-wrong", resultsWrong}, figure{"interrupted", interrupted},
		figure{"outputs-wrong", outputsWrong}, figure{"lines-lost", linesLost},
		figure{"subscriber-lines-lost", subLost}, figure{"subscriber-repeats", subRepeats}, figure{"subscriber-reconnects", reconnects},
		figure{"server-warnings", r.logCount("level=WARN")}, figure{"server-errors", r.logCount("level=ERROR")})
	if len(cmds) != shorts+counters {
		t.Errorf("%d commands stored, want %d", len(cmds), shorts+counters)
	}
	if subLost > 0 || subRepeats > 0 {
		t.Errorf("live subscribers lost %d lines and got %d twice", subLost, subRepeats)
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("the replica's log:\n%s", r.logTail(30))
	}
}

// missingLines counts the lines of want that got lacks (as a multiset).
func missingLines(got, want string) int {
	have := map[string]int{}
	for l := range strings.Lines(got) {
		have[l]++
	}
	n := 0
	for l := range strings.Lines(want) {
		if have[l] > 0 {
			have[l]--
		} else {
			n++
		}
	}
	return n
}
