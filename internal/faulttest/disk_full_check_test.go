package faulttest

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// commandOf returns the demo project's command submitted with clientToken
// token.
func commandOf(ctx context.Context, c *client, token string) (command, error) {
	cmds, err := c.commands(ctx)
	if err != nil {
		return command{}, err
	}
	for _, cmd := range cmds {
		if cmd.ClientToken == token {
			return cmd, nil
		}
	}
	return command{}, fmt.Errorf("no command %s", token)
}

// checkStored compares a command's stored output s, read back from the
// start, with what it wrote and what it says of itself, and returns what is
// wrong, or "". When loses, chunks may be missing, as long as the bytes
// missing are those counted lost.
func checkStored(cmd command, s *follower, loses bool) string {
	got, _, repeats := text(s.chunks)
	wrote := diskFullOutput(cmd.ClientToken, got)
	maxSeq := 0
	if len(s.chunks) > 0 {
		maxSeq = s.chunks[len(s.chunks)-1].Seq
	}
	switch {
	case s.err != nil:
		return fmt.Sprintf("reading its output: %v", s.err)
	case repeats > 0:
		return fmt.Sprintf("%d chunks stored twice or out of order", repeats)
	case cmd.OutputBytes != len(wrote):
		return fmt.Sprintf("it wrote %d bytes; outputBytes says %d", len(wrote), cmd.OutputBytes)
	case len(got)+cmd.OutputLostBytes != cmd.OutputBytes:
		return fmt.Sprintf("%d bytes stored and %d lost, of %d written", len(got), cmd.OutputLostBytes, cmd.OutputBytes)
	case cmd.LastSeq != maxSeq && (cmd.OutputLostBytes == 0 || cmd.LastSeq < maxSeq):
		// With output lost at the end, lastSeq is that of the last chunk,
		// stored or not.
		return fmt.Sprintf("lastSeq is %d; the last chunk stored is %d (%d bytes lost)", cmd.LastSeq, maxSeq, cmd.OutputLostBytes)
	case !loses && got != wrote:
		return fmt.Sprintf("%d bytes stored differ from what it wrote (%d lines missing)", len(got), missingLines(got, wrote))
	case missingLines(wrote, got) > 0:
		return fmt.Sprintf("%d lines stored that it never wrote", missingLines(wrote, got))
	}
	return ""
}

// diskFullOutput returns all that the scenario's command token wrote, given
// what of it was stored.
func diskFullOutput(token, stored string) string {
	switch token {
	case "counter":
		// It counted until stopped, after the disk was freed: its last
		// line was stored.
		lines := strings.Split(strings.TrimSuffix(stored, "\n"), "\n")
		n, _ := strconv.Atoi(lines[len(lines)-1])
		return countTo(n)
	case "flood":
		return strings.Repeat(floodLine, floodBytes/len(floodLine)+1)[:floodBytes]
	case "during":
		return duringText
	case "after":
		return countTo(afterLines)
	}
	return ""
}

// liveFigures compares what live subscribers received with what was
// stored.
type liveFigures struct {
	received, neverStored, differ, missed, finishedWrong, reconnects int
}

// add compares the follower f of cmd, which followed it live from the
// start, with the chunks stored for it.
func (lv *liveFigures) add(bad *complaints, cmd command, f *follower, stored []chunk) {
	lv.reconnects += f.reconnects
	if f.err != nil {
		bad.errorf("live subscriber of %s (%s): %v", cmd.ID, cmd.ClientToken, f.err)
		return
	}
	data := make(map[int]string, len(stored))
	for _, ch := range stored {
		data[ch.Seq] = ch.Data
	}
	seen := make(map[int]bool, len(f.chunks))
	var never []int
	for _, ch := range f.chunks {
		lv.received++
		seen[ch.Seq] = true
		switch d, ok := data[ch.Seq]; {
		case !ok:
			lv.neverStored++
			never = append(never, ch.Seq)
		case d != ch.Data:
			lv.differ++
			bad.errorf("live subscriber of %s (%s) received chunk %d of %d bytes; %d bytes are stored", cmd.ID, cmd.ClientToken, ch.Seq, len(ch.Data), len(d))
		}
	}
	if len(never) > 0 {
		bad.errorf("live subscriber of %s (%s) received %d chunks that were never stored (seqs %d…%d); its lastSeq is %d",
			cmd.ID, cmd.ClientToken, len(never), never[0], never[len(never)-1], cmd.LastSeq)
	}
	missed := 0
	for seq := range data {
		if !seen[seq] {
			missed++
		}
	}
	if missed > 0 {
		lv.missed += missed
		bad.errorf("live subscriber of %s (%s) missed %d stored chunks", cmd.ID, cmd.ClientToken, missed)
	}
	if fin := f.fin; fin.Status != cmd.Status || fin.LastSeq != cmd.LastSeq ||
		fin.OutputLostBytes != cmd.OutputLostBytes || fin.Truncated != cmd.Truncated {
		lv.finishedWrong++
		bad.errorf("live subscriber of %s (%s) was told it ended %+v; it is %s at seq %d with %d bytes lost, truncated %v",
			cmd.ID, cmd.ClientToken, *fin, cmd.Status, cmd.LastSeq, cmd.OutputLostBytes, cmd.Truncated)
	}
}

// readyzWatch asks a server's /readyz every 50 ms until ctx ends and keeps
// the answers.
type readyzWatch struct {
	mu      sync.Mutex
	answers []readyzAnswer
}

type readyzAnswer struct {
	asked, answered time.Time
	code            int // 0 when it did not answer
}

func watchReadyz(ctx context.Context, c *client) *readyzWatch {
	w := &readyzWatch{}
	go func() {
		for ctx.Err() == nil {
			asked := time.Now()
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			code, _, _ := c.get(actx, "/readyz")
			cancel()
			w.mu.Lock()
			w.answers = append(w.answers, readyzAnswer{asked: asked, answered: time.Now(), code: code})
			w.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return w
}

// last returns the code of the latest answer.
func (w *readyzWatch) last() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.answers) == 0 {
		return 0
	}
	return w.answers[len(w.answers)-1].code
}

// okSince reports whether a request made after since was answered 200.
func (w *readyzWatch) okSince(since time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, a := range w.answers {
		if a.asked.After(since) && a.code == http.StatusOK {
			return true
		}
	}
	return false
}

// counts returns, of the requests answered before to, how many were
// answered 503, and how many were asked after from and answered 200.
func (w *readyzWatch) counts(from, to time.Time) (notReady, ready int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, a := range w.answers {
		switch {
		case !a.answered.Before(to):
		case a.code == http.StatusServiceUnavailable:
			notReady++
		case a.code == http.StatusOK && a.asked.After(from):
			ready++
		}
	}
	return notReady, ready
}
