package kube

import (
	"testing"
	"time"

	"github.com/rdev-hq/rdev/domain"
)

// BenchmarkExec_Kwok compares one short command through Executor.Exec (the
// wrapper, its process group and pid file) with a direct client-go exec of
// the same command against the same API server and kwok. The ratio of the
// two ns/op is the executor's overhead. Commands come 50 ms apart (off the
// clock), time for the executor's warm streams to be ready again; Cold has
// no warm streams, and the back-to-back runs no pause.
func BenchmarkExec_Kwok(b *testing.B) {
	c := mustCluster(b)
	k := newKwokProject(b, c, Config{})
	ex := k.executor()
	tg, err := k.projects.Target("p")
	if err != nil {
		b.Fatal(err)
	}
	argv := []string{"sh", "-c", "echo hi"}
	direct := func(b *testing.B) {
		var out lineWriter
		if err := ex.streams.Stream(b.Context(), tg, argv, nil, &out, nil); err != nil || out.String() != "hi\n" {
			b.Fatal(err, out.String())
		}
	}
	through := func(ex *Executor) func(*testing.B) {
		return func(b *testing.B) {
			var out lineWriter
			res, err := ex.Exec(b.Context(), domain.ExecRequest{Project: k.proj, Argv: argv}, &out, nil)
			if err != nil || res.ExitCode != 0 || out.String() != "hi\n" {
				b.Fatal(res, err, out.String())
			}
		}
	}
	paused := func(run func(*testing.B)) func(*testing.B) {
		return func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				time.Sleep(50 * time.Millisecond)
				b.StartTimer()
				run(b)
			}
		}
	}
	b.Run("Direct", paused(direct))
	b.Run("Executor", paused(through(ex)))
	b.Run("Cold", paused(through(k.executor(WithWarmIdle(0)))))
	b.Run("back-to-back/Direct", func(b *testing.B) {
		for b.Loop() {
			direct(b)
		}
	})
	b.Run("back-to-back/Executor", func(b *testing.B) {
		for b.Loop() {
			through(ex)(b)
		}
	})
}
