package kube

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/httpstream"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/rdev-hq/rdev/domain"
)

func TestExitResult(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want domain.ExecResult
		ok   bool
	}{
		{nil, domain.ExecResult{}, true},
		{utilexec.CodeExitError{Err: errors.New("x"), Code: 3}, domain.ExecResult{ExitCode: 3}, true},
		{utilexec.CodeExitError{Err: errors.New("x"), Code: 143}, domain.ExecResult{ExitCode: -1, Signal: "SIGTERM"}, true},
		{utilexec.CodeExitError{Err: errors.New("x"), Code: 192}, domain.ExecResult{ExitCode: -1, Signal: "SIGRTMIN+30"}, true},
		{utilexec.CodeExitError{Err: errors.New("x"), Code: 193}, domain.ExecResult{ExitCode: 193}, true},
		{fmt.Errorf("wrapped: %w", utilexec.CodeExitError{Err: errors.New("x"), Code: 1}), domain.ExecResult{ExitCode: 1}, true},
		{errors.New("Internal error occurred: error executing command in container: cmd wait: /bin/sh -c ...: exit status 7"), domain.ExecResult{ExitCode: 7}, true},
		{errors.New("error executing command in container: cmd wait: sh: signal: killed"), domain.ExecResult{ExitCode: -1, Signal: "SIGKILL"}, true},
		{errors.New("exit status 3 and more"), domain.ExecResult{}, false},
		{errors.New("next reader: websocket: close 1006 (abnormal closure)"), domain.ExecResult{}, false},
	} {
		got, ok := exitResult(tt.err)
		if got != tt.want || ok != tt.ok {
			t.Errorf("exitResult(%v) = %+v, %v; want %+v, %v", tt.err, got, ok, tt.want, tt.ok)
		}
	}
}

func TestExecError(t *testing.T) {
	tg := Target{Namespace: "ns", Pod: "p", Container: "c"}
	upgrade := func(err error) error { return &httpstream.UpgradeFailureError{Cause: err} }
	for _, tt := range []struct {
		name string
		err  error
		code string
		says string
	}{
		{"NotFound", upgrade(apierrors.NewNotFound(podsResource, "p")), domain.ENOTFOUND, "not found"},
		{"Forbidden", upgrade(apierrors.NewForbidden(podsResource, "p", errors.New("no"))), domain.EFORBIDDEN, "not allowed"},
		{"ForbiddenSPDY", apierrors.NewForbidden(podsResource, "p", errors.New("no")), domain.EFORBIDDEN, "not allowed"},
		{"BadRequest", upgrade(apierrors.NewBadRequest("pod has no host")), domain.ECONFLICT, "cannot run commands now"},
		{"Internal", upgrade(apierrors.NewInternalError(errors.New("boom"))), domain.EUNAVAILABLE, "failed the exec"},
		{"TooMany", upgrade(apierrors.NewTooManyRequests("slow down", 1)), domain.EUNAVAILABLE, "(429)"},
		{"Unreachable", fmt.Errorf("%w: %w", errTransport, syscall.ECONNREFUSED), domain.EUNAVAILABLE, "cannot be reached"},
		{"UpgradeNoStatus", upgrade(errors.New("bad handshake")), domain.EUNAVAILABLE, "could not open"},
		{"Broken", errors.New("next reader: websocket: close 1006"), domain.EUNAVAILABLE, "broke mid-command"},
		{"Runtime", errors.New("Internal error occurred: error executing command in container: no exec"), domain.EUNAVAILABLE, "container runtime"},
		{"Domain", domain.Errorf(domain.EUNAVAILABLE, "breaker open"), domain.EUNAVAILABLE, "breaker open"},
	} {
		err := execError(tt.err, tg)
		if domain.ErrorCode(err) != tt.code || !strings.Contains(domain.ErrorMessage(err), tt.says) {
			t.Errorf("%s: %v, want %s saying %q", tt.name, err, tt.code, tt.says)
		}
	}
	long := errors.New(strings.Repeat("x", 5000))
	if m := domain.ErrorMessage(execError(long, tg)); len(m) > 500 {
		t.Errorf("message not clipped: %d bytes", len(m))
	}
}
