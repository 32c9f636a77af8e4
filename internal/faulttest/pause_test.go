package faulttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/internal/testenv"
)

// TestDatabasePause freezes the database (SIGSTOP of every PostgreSQL
// process) for three times the lease while two replicas run eight long
// commands that subscribers follow, then lets it go on. Whatever each
// command's end is, it must be the whole truth: no chunk stored past the
// command's lastSeq or written after its end (a replica whose lease was
// taken writes nothing more for the command: fencing), no process left
// running once its command has ended, and every subscriber ends with the
// command's final state and the stored output.
func TestDatabasePause(t *testing.T) {
	requireFaults(t)
	const (
		lease    = 2 * time.Second
		commands = 8
		lines    = 300 // one every 50 ms: about 15 s
	)
	pg := testenv.StartPGCluster(t)
	d := newDeployment(t, pg.URL(), "RDEV_LEASE_TTL="+lease.String(), "RDEV_KILL_GRACE=1s",
		"CONCURRENT_COMMANDS=4", "RDEV_PER_PROJECT_COMMANDS="+strconv.Itoa(commands))
	a := d.start("a", "")
	b := d.start("b", "")
	servers := newPool(d.createKey(a), a, b)
	c := servers.pick(0)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	// The markers make each command's shell findable in the process table.
	marker := "rdev-fault-pause-" + rand.Text()[:10]
	markerOf := func(i int) string { return fmt.Sprintf("%s-%d.", marker, i) }
	t.Cleanup(func() { killMarked(marker) })
	followers := make([]*follower, commands)
	for i := range commands {
		var id string
		shell := fmt.Sprintf(": %s; i=0; while [ $i -lt %d ]; do i=$((i+1)); echo $i; sleep 0.05; done", markerOf(i), lines)
		if _, err := retry(ctx, func() (err error) {
			id, err = servers.pick(i).execute(ctx, shell, fmt.Sprintf("pause-%d", i))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		followers[i] = follow(ctx, id, servers.all)
	}
	waitFor(ctx, t, "every command to run and print", func() (bool, error) {
		for _, f := range followers {
			if f.seen.Load() < 10 {
				return false, nil
			}
		}
		return true, nil
	})

	pause := 3 * lease
	if err := pg.Pause(); err != nil {
		t.Fatal(err)
	}
	// The pause's length is the fault itself, not a wait for a condition.
	select {
	case <-ctx.Done():
	case <-time.After(pause):
	}
	if err := pg.Resume(); err != nil {
		t.Fatal(err)
	}

	// Each command's state when it is first seen ended, and whether its
	// process still runs a while later: a command's process gets SIGTERM
	// when it ends, then SIGKILL after the grace of 1s.
	const killWindow = 3 * time.Second
	ended := map[string]command{}
	endedAt := map[string]time.Time{}
	// How many chunks each command had stored when it was first seen
	// ended: any more later were written after its end. (A chunk's own
	// time is no test: an end decided while a fenced write held the row
	// commits after that write, with the earlier time.)
	db := openStore(t, pg.URL())
	storedAtEnd := map[string]int{}
	checked := map[string]bool{}
	left := 0
	index := map[string]int{}
	for i, f := range followers {
		index[f.id] = i
	}
	waitFor(ctx, t, "every command to end and its process with it", func() (bool, error) {
		cmds, err := c.commands(ctx)
		if err != nil {
			return false, err
		}
		for _, cmd := range cmds {
			if _, seen := ended[cmd.ID]; !seen && cmd.final() {
				var n int
				if err := db.QueryRowContext(ctx, `SELECT count(*) FROM command_output WHERE command_id = $1`, cmd.ID).Scan(&n); err != nil {
					return false, err
				}
				ended[cmd.ID], endedAt[cmd.ID], storedAtEnd[cmd.ID] = cmd, time.Now(), n
			}
		}
		for id, at := range endedAt {
			if !checked[id] && time.Since(at) > killWindow {
				checked[id] = true
				if pids := marked(markerOf(index[id])); len(pids) > 0 {
					left++
					t.Errorf("%s ended %s, and its process %v still ran %s later", id, ended[id].Status, pids, killWindow)
				}
			}
		}
		return len(checked) == commands, nil
	})
	killMarked(marker)

	// What storage holds now, against each command's end.
	rows, err := db.QueryContext(ctx, `SELECT c.id, c.last_seq, coalesce(max(o.seq), 0), count(o.seq)
		FROM commands c LEFT JOIN command_output o ON o.command_id = c.id GROUP BY c.id, c.last_seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rows.Close() }()
	var pastLastSeq, afterEnd, lastSeqMoved int
	for rows.Next() {
		var id string
		var lastSeq, maxSeq, stored int
		if err := rows.Scan(&id, &lastSeq, &maxSeq, &stored); err != nil {
			t.Fatal(err)
		}
		end := ended[id]
		pastLastSeq += max(0, maxSeq-end.LastSeq)
		afterEnd += max(0, stored-storedAtEnd[id])
		if lastSeq != end.LastSeq {
			lastSeqMoved++
			t.Errorf("%s ended %s at seq %d; its lastSeq is now %d", id, end.Status, end.LastSeq, lastSeq)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}

	var succeeded, interrupted, other, subscribersWrong int
	for _, f := range followers {
		<-f.done
		end := ended[f.id]
		switch end.Status {
		case "SUCCEEDED":
			succeeded++
		case "INTERRUPTED":
			interrupted++
		default:
			other++
			t.Errorf("%s ended %s: %s", f.id, end.Status, end.Reason)
		}
		got, gaps, repeats := text(f.chunks)
		switch {
		case f.err != nil:
			t.Errorf("subscriber of %s: %v", f.id, f.err)
		case f.fin.Status != end.Status || f.fin.LastSeq != end.LastSeq || gaps > 0 || repeats > 0:
			t.Errorf("subscriber of %s: ended %s at seq %d (%d seqs missing, %d repeated), the command %s at seq %d",
				f.id, f.fin.Status, f.fin.LastSeq, gaps, repeats, end.Status, end.LastSeq)
		case end.Status == "SUCCEEDED" && missingLines(got, countTo(lines)) > 0:
			t.Errorf("subscriber of %s: %d lines missing", f.id, missingLines(got, countTo(lines)))
		default:
			continue
		}
		subscribersWrong++
	}

	logFigures(t, "database-pause",
		figure{"commands", commands}, figure{"lease-ms", int(lease.Milliseconds())}, figure{"pause-ms", int(pause.Milliseconds())},
		figure{"succeeded", succeeded}, figure{"interrupted", interrupted}, figure{"other-ends", other},
		figure{"chunks-past-lastseq", pastLastSeq}, figure{"chunks-after-end", afterEnd}, figure{"lastseq-moved", lastSeqMoved},
		figure{"processes-left", left},
		figure{"subscribers-wrong", subscribersWrong},
		figure{"server-warnings", a.logCount("level=WARN") + b.logCount("level=WARN")})
	if pastLastSeq > 0 || afterEnd > 0 {
		t.Errorf("%d chunks stored past their command's lastSeq, %d written after its end", pastLastSeq, afterEnd)
	}
	if t.Failed() {
		t.Logf("replica a:\n%s\nreplica b:\n%s", a.logTail(15), b.logTail(15))
	}
}

// countTo returns "1\n2\n…n\n", a counter command's output.
func countTo(n int) string {
	var b bytes.Buffer
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "%d\n", i)
	}
	return b.String()
}

// marked lists the processes whose command line contains marker.
func marked(marker string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(marker)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killMarked kills the processes marked lists: the test's own commands,
// found by a marker no other process carries.
func killMarked(marker string) {
	for _, pid := range marked(marker) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
