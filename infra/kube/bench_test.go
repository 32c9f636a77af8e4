package kube

import (
	"testing"

	"github.com/rdev-hq/rdev/domain"
)

// BenchmarkExec_Kwok compares one short command through Executor.Exec (the
// wrapper, its process group and pid file) with a direct client-go exec of
// the same command against the same API server and kwok. The ratio of the
// two ns/op is the executor's overhead.
func BenchmarkExec_Kwok(b *testing.B) {
	c := mustCluster(b)
	k := newKwokProject(b, c, Config{})
	ex := k.executor()
	tg, err := k.projects.Target("p")
	if err != nil {
		b.Fatal(err)
	}
	argv := []string{"sh", "-c", "echo hi"}
	b.Run("Direct", func(b *testing.B) {
		for b.Loop() {
			var out lineWriter
			if err := ex.streams.Stream(b.Context(), tg, argv, &out, nil); err != nil || out.String() != "hi\n" {
				b.Fatal(err, out.String())
			}
		}
	})
	b.Run("Executor", func(b *testing.B) {
		for b.Loop() {
			var out lineWriter
			res, err := ex.Exec(b.Context(), domain.ExecRequest{Project: k.proj, Argv: argv}, &out, nil)
			if err != nil || res.ExitCode != 0 || out.String() != "hi\n" {
				b.Fatal(res, err, out.String())
			}
		}
	})
}
