package faulttest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/internal/testenv"
)

// TestReplicaKill kills one of two replicas with SIGKILL while 1,000 short
// commands are submitted and run, starts a replacement on its data
// directory, and counts: every command submitted ends (0 lost), none runs
// twice, each that succeeded has its whole output, and the only commands
// INTERRUPTED are those the killed replica was running.
func TestReplicaKill(t *testing.T) {
	requireFaults(t)
	const (
		total       = 1000
		concurrency = 8 // per replica
		submitters  = 4
	)
	pg := testenv.StartPGCluster(t)
	d := newDeployment(t, pg.URL(), "RDEV_LEASE_TTL=3s",
		"CONCURRENT_COMMANDS="+strconv.Itoa(concurrency), "RDEV_PER_PROJECT_COMMANDS="+strconv.Itoa(2*concurrency))
	a := d.start("a", "")
	b := d.start("b", "")
	servers := newPool(d.createKey(a), a, b)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()

	// Each command appends its number to runs.log, so one run twice shows
	// there twice. Submitters retry a failed request on the next replica
	// with the same clientToken, as a client behind a load balancer would.
	runsLog := filepath.Join(d.project(), "runs.log")
	ids := make([]string, total)
	var next, submitRetries atomic.Int64
	var submitErr error
	var wg sync.WaitGroup
	var errOnce sync.Once
	for range submitters {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < total; i = int(next.Add(1)) - 1 {
				shell := fmt.Sprintf("echo start; echo %d >> runs.log; sleep 0.05; echo end", i)
				turn := i
				failed, err := retry(ctx, func() error {
					c := servers.pick(turn)
					turn++
					id, err := c.execute(ctx, shell, fmt.Sprintf("kill-%d", i))
					ids[i] = id
					return err
				})
				submitRetries.Add(int64(failed))
				if err != nil {
					errOnce.Do(func() { submitErr = fmt.Errorf("submitting command %d: %w", i, err) })
					return
				}
			}
		})
	}

	waitFor(ctx, t, "a third of the commands to run", func() (bool, error) {
		return countLines(runsLog) >= total/3, nil
	})
	a.kill()
	killedAt := time.Now()
	ranAtKill := countLines(runsLog)
	servers.replace(a, d.start("a2", "a"))
	wg.Wait()
	if submitErr != nil {
		t.Fatal(submitErr)
	}

	c := servers.pick(1)
	waitFor(ctx, t, "the queue to drain and every lease to end", func() (bool, error) {
		queued, running, err := c.queue(ctx)
		return err == nil && queued == 0 && running == 0, err
	})
	cmds, err := c.commands(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byToken := map[string]command{}
	for _, cmd := range cmds {
		byToken[cmd.ClientToken] = cmd
	}

	runs := map[string]int{}
	log, _ := os.ReadFile(runsLog)
	for line := range strings.Lines(string(log)) {
		runs[strings.TrimSpace(line)]++
	}
	var lost, twice, succeeded, interrupted, other, wrong int
	var finals []command
	bad := &complaints{t: t}
	for i := range total {
		cmd, ok := byToken[fmt.Sprintf("kill-%d", i)]
		n := runs[strconv.Itoa(i)]
		if n > 1 {
			twice++
			bad.errorf("command %d (%s) ran %d times", i, cmd.ID, n)
		}
		switch {
		case !ok || !cmd.final():
			lost++
			bad.errorf("command %d (%q) was lost: %+v", i, ids[i], cmd)
		case cmd.Status == "SUCCEEDED":
			succeeded++
			finals = append(finals, cmd)
			if n == 0 || cmd.ExitCode == nil || *cmd.ExitCode != 0 {
				wrong++
				bad.errorf("command %d SUCCEEDED having run %d times, exit code %v", i, n, cmd.ExitCode)
			}
		case cmd.Status == "INTERRUPTED":
			interrupted++
		default:
			other++
			bad.errorf("command %d ended %s: %s", i, cmd.Status, cmd.Reason)
		}
	}

	bad.done()

	// Whole output of every command that succeeded, as a subscriber reads it.
	outputWrong := countWrongOutputs(ctx, t, servers, finals, func(command) string { return "start\nend\n" })

	// Which replica ran each interrupted command: the killed one's owner
	// finished nothing after the kill, the live ones did.
	rows, err := openStore(t, pg.URL()).QueryContext(ctx, `SELECT owner,
		count(*) FILTER (WHERE status = 'INTERRUPTED'),
		count(*) FILTER (WHERE status <> 'INTERRUPTED' AND finished_at > $1)
		FROM commands GROUP BY owner`, killedAt)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rows.Close() }()
	interruptedElsewhere := 0
	for rows.Next() {
		var owner string
		var inter, after int
		if err := rows.Scan(&owner, &inter, &after); err != nil {
			t.Fatal(err)
		}
		if after > 0 {
			interruptedElsewhere += inter
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}

	logFigures(t, "replica-kill",
		figure{"commands", total}, figure{"ran-before-kill", ranAtKill}, figure{"submit-retries", int(submitRetries.Load())},
		figure{"succeeded", succeeded}, figure{"interrupted", interrupted}, figure{"interrupted-on-live-replicas", interruptedElsewhere},
		figure{"other-ends", other}, figure{"lost", lost}, figure{"ran-twice", twice},
		figure{"results-wrong", wrong}, figure{"outputs-wrong", outputWrong})
	if interrupted > concurrency {
		t.Errorf("%d commands INTERRUPTED; the killed replica ran at most %d", interrupted, concurrency)
	}
	if interruptedElsewhere > 0 {
		t.Errorf("%d commands of live replicas were INTERRUPTED", interruptedElsewhere)
	}
	if outputWrong > 0 {
		t.Errorf("%d commands that succeeded have wrong output", outputWrong)
	}
	if t.Failed() {
		t.Logf("replica a (killed):\n%s", a.logTail(20))
	}
}

// countLines counts the lines of the file at path; 0 if it is missing.
func countLines(path string) int {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), "\n")
}

// countWrongOutputs counts the commands whose stored output, read as a
// subscriber reads it, is not want(command), has gaps or repeated seqs, or
// ends with a CommandFinished that disagrees with the command.
func countWrongOutputs(ctx context.Context, t *testing.T, servers *pool, cmds []command, want func(command) string) int {
	t.Helper()
	bad := &complaints{t: t}
	defer bad.done()
	outputs := readOutputs(ctx, servers, cmds)
	wrong := 0
	for _, cmd := range cmds {
		f := outputs[cmd.ID]
		got, gaps, repeats := text(f.chunks)
		switch {
		case f.err != nil:
			bad.errorf("reading the output of %s: %v", cmd.ID, f.err)
		case got != want(cmd) || gaps > 0 || repeats > 0:
			bad.errorf("output of %s: %q (%d seqs missing, %d repeated), want %q", cmd.ID, got, gaps, repeats, want(cmd))
		case f.fin.Status != cmd.Status || f.fin.LastSeq != cmd.LastSeq:
			bad.errorf("%s ends %s at seq %d in its stream, %s at seq %d as a command", cmd.ID, f.fin.Status, f.fin.LastSeq, cmd.Status, cmd.LastSeq)
		default:
			continue
		}
		wrong++
	}
	return wrong
}
