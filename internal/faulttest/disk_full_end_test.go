package faulttest

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"
)

// testDiskFullEndedWhileHeld has a command end while its output is held:
// it floods stdout until rdev blocks it, stops the flood after 2 s, writes
// a burst to stderr (which its pipe takes whole) and exits; the disk stays
// full 3 s longer, then is freed. The hold is long, so all of the burst
// must be stored.
func testDiskFullEndedWhileHeld(t *testing.T) {
	const burst = 300_000
	x := startOnSmallDisk(t, "20m", "RDEV_OUTPUT_HOLD=10m")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	marker := "rdev-fault-disk-full-" + rand.Text()[:10]
	t.Cleanup(func() { killMarked(marker) })
	x.execute(ctx, fmt.Sprintf(": %s; while [ ! -e go ]; do sleep 0.01; done; timeout 2 yes; head -c %d /dev/zero | tr '\\0' b >&2",
		marker, burst), "ended")
	if err := x.disk.fill(1 << 20); err != nil {
		t.Fatalf("filling the disk: %v", err)
	}
	x.touch("go")
	waitFor(ctx, t, "the command's processes to end", func() (bool, error) { return len(marked(marker)) == 0, nil })
	// How long the disk stays full is the fault itself.
	select {
	case <-ctx.Done():
	case <-time.After(3 * time.Second):
	}
	if err := x.disk.unfill(); err != nil {
		t.Fatalf("freeing the disk: %v", err)
	}
	x.drained(ctx)

	cmd, err := commandOf(ctx, x.c, "ended")
	if err != nil {
		t.Fatal(err)
	}
	stored := readOutputs(ctx, x.servers, []command{cmd})[cmd.ID]
	stderr := 0
	for _, ch := range stored.chunks {
		if ch.Stream == "STDERR" {
			stderr += len(ch.Data)
		}
	}
	logFigures(t, "disk-full-ended-while-held",
		figure{"stderr-written", burst}, figure{"stderr-stored", stderr},
		figure{"output-bytes", cmd.OutputBytes}, figure{"lost-bytes", cmd.OutputLostBytes})
	if stderr != burst || cmd.OutputLostBytes != 0 {
		t.Errorf("%s (%s) wrote %d bytes to stderr before it ended; %d are stored, and %d bytes are counted lost",
			cmd.ID, cmd.Status, burst, stderr, cmd.OutputLostBytes)
	}
}

// testDiskFullCappedTail has a command write 30 MB, three times the output
// cap, while the disk is full, so that the hold (3 s) runs out, and end
// before space is freed. Output past the cap goes to live subscribers before
// it is stored; none of it may be past the command's lastSeq in the end.
func testDiskFullCappedTail(t *testing.T) {
	x := startOnSmallDisk(t, "20m", "RDEV_OUTPUT_HOLD=3s")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	f := x.execute(ctx, "while [ ! -e go ]; do sleep 0.01; done; yes capped | head -c 30000000", "capped")
	if err := x.disk.fill(1 << 20); err != nil {
		t.Fatalf("filling the disk: %v", err)
	}
	x.touch("go")
	waitFor(ctx, t, "the command to end while the disk is full", func() (bool, error) {
		cmd, err := commandOf(ctx, x.c, "capped")
		return err == nil && cmd.final(), err
	})
	if err := x.disk.unfill(); err != nil {
		t.Fatalf("freeing the disk: %v", err)
	}
	x.drained(ctx)

	cmd, err := commandOf(ctx, x.c, "capped")
	if err != nil {
		t.Fatal(err)
	}
	stored := map[int]bool{}
	for _, ch := range readOutputs(ctx, x.servers, []command{cmd})[cmd.ID].chunks {
		stored[ch.Seq] = true
	}
	var neverStored, pastLastSeq, truncated int
	for _, ch := range f.chunks {
		if !stored[ch.Seq] {
			neverStored++
		}
		if ch.Seq > cmd.LastSeq {
			pastLastSeq++
		}
	}
	if cmd.Truncated {
		truncated = 1
	}
	logFigures(t, "disk-full-capped-tail",
		figure{"chunks-live", len(f.chunks)}, figure{"chunks-live-never-stored", neverStored},
		figure{"chunks-live-past-lastseq", pastLastSeq}, figure{"last-seq", cmd.LastSeq},
		figure{"lost-bytes", cmd.OutputLostBytes}, figure{"truncated", truncated})
	if pastLastSeq > 0 {
		t.Errorf("the live subscriber of %s received %d chunks past its lastSeq %d, which storage never had",
			cmd.ID, pastLastSeq, cmd.LastSeq)
	}
	if neverStored > 0 && (cmd.OutputLostBytes == 0 || !cmd.Truncated) {
		t.Errorf("%s: %d chunks sent live were never stored, yet it is truncated=%v with %d bytes counted lost",
			cmd.ID, neverStored, cmd.Truncated, cmd.OutputLostBytes)
	}
}
