//go:build !linux

package local

import (
	"context"
	"io"
	"os/exec"

	"github.com/rdev-hq/rdev/domain"
)

// run refuses: the Executor watches processes through Linux interfaces.
func (e *Executor) run(_ context.Context, _ *exec.Cmd, _ *launch, _ string, _, _ io.Writer) (domain.ExecResult, error) {
	return domain.ExecResult{}, domain.Errorf(domain.EUNAVAILABLE, "the local executor runs on Linux only")
}

// KillOrphans has nothing to do where commands cannot run.
func (e *Executor) KillOrphans() (int, error) { return 0, nil }
