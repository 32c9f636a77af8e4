//go:build unix

package sqlite_test

import (
	"syscall"
	"testing"
	"time"
)

// cpuClock measures the CPU time of the whole process, every goroutine's,
// for work a benchmark sets off beyond its own goroutine.
type cpuClock struct{ start time.Duration }

func startCPU(tb testing.TB) cpuClock {
	return cpuClock{start: processCPU(tb)}
}

// report adds the metric unit (such as "cpu-ns/B"): the CPU time since
// startCPU, in nanoseconds, per one of n.
func (c cpuClock) report(b *testing.B, n int64, unit string) {
	if n > 0 {
		b.ReportMetric(float64(processCPU(b)-c.start)/float64(n), unit)
	}
}

// processCPU is the user plus system time the process has used.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
