package client

import (
	"testing"
	"time"
)

// Waits are spread over the upper half of their span, so clients that lost
// the server together come back apart; a server's hint is waited out.
func TestDelay(t *testing.T) {
	const wait = 100 * time.Millisecond
	seen := map[time.Duration]bool{}
	for range 200 {
		d := delay(wait, 0)
		if d < wait/2 || d > wait {
			t.Fatalf("delay(%s, 0) = %s, want within [%s, %s]", wait, d, wait/2, wait)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Errorf("200 delays took %d values: not spread", len(seen))
	}
	if d := delay(wait, 2*time.Second); d != 2*time.Second {
		t.Errorf("delay with a 2s hint = %s", d)
	}
}

func TestFinished_ExitStatus(t *testing.T) {
	for _, tt := range []struct {
		name     string
		status   Status
		exitCode *int
		signal   string
		want     int
	}{
		{name: "SUCCEEDED", status: StatusSucceeded, exitCode: new(0), want: 0},
		{name: "FAILED", status: StatusFailed, exitCode: new(3), want: 3},
		{name: "SIGKILL", status: StatusFailed, signal: "SIGKILL", want: 137},
		{name: "SIGTERM", status: StatusFailed, signal: "SIGTERM", want: 143},
		{name: "SIGRTMIN+2", status: StatusFailed, signal: "SIGRTMIN+2", want: 164},
		{name: "SIG40", status: StatusFailed, signal: "SIG40", want: 168},
		{name: "TIMED_OUT", status: StatusTimedOut, signal: "SIGTERM", want: 124},
		{name: "CANCELLED", status: StatusCancelled, want: 130},
		{name: "INTERRUPTED", status: StatusInterrupted, want: 1},
		{name: "CouldNotStart", status: StatusFailed, want: 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &Finished{Status: tt.status, ExitCode: tt.exitCode, Signal: tt.signal}
			if got := f.ExitStatus(); got != tt.want {
				t.Errorf("ExitStatus() = %d, want %d", got, tt.want)
			}
		})
	}
}
