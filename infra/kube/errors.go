package kube

import (
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"k8s.io/apimachinery/pkg/util/httpstream"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/rdev-hq/rdev/domain"
)

// exitResult returns how the process ended, if err (from a stream) says so:
// nil is exit status 0, an exit status error carries the status. Some
// kubelets (kwok's) report a failed process only as an error message ending
// in Go's "exit status N" or "signal: NAME"; those are understood too.
func exitResult(err error) (domain.ExecResult, bool) {
	if err == nil {
		return domain.ExecResult{}, true
	}
	var ee utilexec.ExitError
	if errors.As(err, &ee) && ee.Exited() {
		return fromStatus(ee.ExitStatus()), true
	}
	msg := err.Error()
	if m := exitStatusSuffix.FindStringSubmatch(msg); m != nil {
		if n, err := strconv.Atoi(m[1]); err == nil && n >= 0 && n <= 255 {
			return fromStatus(n), true
		}
	}
	if m := signalSuffix.FindStringSubmatch(msg); m != nil {
		if name, ok := signalByDescription[m[1]]; ok {
			return domain.ExecResult{ExitCode: -1, Signal: name}, true
		}
	}
	return domain.ExecResult{}, false
}

var (
	exitStatusSuffix = regexp.MustCompile(`: exit status (\d{1,3})$`)
	signalSuffix     = regexp.MustCompile(`: signal: ([a-z0-9 ]+)$`)
)

// fromStatus maps an exit status to a result: 129 to 192 are deaths by
// signal 1 to 64, as the exec API reports them.
func fromStatus(code int) domain.ExecResult {
	if code > 128 && code <= 128+64 {
		return domain.ExecResult{ExitCode: -1, Signal: signalName(code - 128)}
	}
	return domain.ExecResult{ExitCode: code}
}

// linuxSignals are the Linux signal names by number: a container's signals
// are Linux's whatever rdev runs on.
var linuxSignals = [...]string{
	1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT",
	7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2",
	13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD",
	18: "SIGCONT", 19: "SIGSTOP", 20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU",
	23: "SIGURG", 24: "SIGXCPU", 25: "SIGXFSZ", 26: "SIGVTALRM", 27: "SIGPROF",
	28: "SIGWINCH", 29: "SIGIO", 30: "SIGPWR", 31: "SIGSYS",
}

// signalName names Linux signal n, e.g. "SIGTERM"; real-time signals are
// "SIGRTMIN+k".
func signalName(n int) string {
	if n > 0 && n < len(linuxSignals) {
		return linuxSignals[n]
	}
	const rtmin = 34
	if n >= rtmin {
		return "SIGRTMIN+" + strconv.Itoa(n-rtmin)
	}
	return "SIG" + strconv.Itoa(n)
}

// signalByDescription maps Go's signal descriptions ("terminated") to
// names, for the kubelets that report a signal only in a message.
var signalByDescription = func() map[string]string {
	m := map[string]string{}
	for n := 1; n < len(linuxSignals); n++ {
		m[syscall.Signal(n).String()] = signalName(n)
	}
	return m
}()

// execError turns an error that ended an exec stream (other than an exit
// status) into a domain error.
func execError(err error, t Target) error {
	var de *domain.Error
	if errors.As(err, &de) {
		return err
	}
	pod := t.Namespace + "/" + t.Pod
	if s, ok := apiStatus(err); ok {
		msg := clipMessage(s.Message)
		switch code := int(s.Code); {
		case code == http.StatusNotFound:
			return domain.Errorf(domain.ENOTFOUND, "pod %s (or its container %s) not found: %s", pod, t.Container, msg)
		case code == http.StatusForbidden:
			return domain.Errorf(domain.EFORBIDDEN, "rdev is not allowed to exec in pod %s: %s", pod, msg)
		case code == http.StatusUnauthorized:
			return domain.Errorf(domain.EUNAVAILABLE, "the Kubernetes API server refused rdev's credentials: %s", msg)
		case code == http.StatusBadRequest || code == http.StatusConflict:
			return domain.Errorf(domain.ECONFLICT, "pod %s cannot run commands now: %s", pod, msg)
		case strings.Contains(s.Message, "executable file not found") || strings.Contains(s.Message, "no such file or directory"):
			return domain.Errorf(domain.ENOTFOUND, "container %s of pod %s cannot run /bin/sh, which rdev needs: %s", t.Container, pod, msg)
		default:
			return domain.Errorf(domain.EUNAVAILABLE, "the Kubernetes API server failed the exec in pod %s (%d): %s", pod, code, msg)
		}
	}
	if httpstream.IsUpgradeFailure(err) {
		return domain.Errorf(domain.EUNAVAILABLE, "could not open an exec stream to pod %s: %s", pod, clipMessage(err.Error()))
	}
	if strings.Contains(err.Error(), "error executing command in container") {
		// The kubelet's own status, sent on the stream's error channel.
		return domain.Errorf(domain.EUNAVAILABLE, "the container runtime could not run the command in pod %s: %s", pod, clipMessage(err.Error()))
	}
	if isTransportError(err) {
		return domain.Errorf(domain.EUNAVAILABLE, "the Kubernetes API server cannot be reached: %s", clipMessage(err.Error()))
	}
	return domain.Errorf(domain.EUNAVAILABLE, "the exec stream to pod %s broke mid-command: %s", pod, clipMessage(err.Error()))
}

// clipMessage shortens a message from the API server or a kubelet, which
// may quote the whole wrapper script.
func clipMessage(s string) string {
	const limit = 300
	if len(s) <= limit {
		return s
	}
	return s[:limit/2] + " … " + s[len(s)-limit/2:]
}
