package kube

import (
	"context"
	"io"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Opening an exec stream costs an HTTP upgrade through the API server to the
// kubelet and a process start in the container: most of what a short command
// takes. So a project that has just run a command keeps warm streams open
// and ready (warmPerTarget), each a warm wrapper waiting on its stdin: the
// next command is written to one instead of being a new exec. They serve the
// project's next commands, if these come within the idle time; otherwise
// they are closed.
//
// The warm wrapper is warmLauncher running warmScript, which runs
// wrapperSetup, prints "R" (the stream is up), reads the request, the
// parameters wrapperParams gives the wrapper, as lines (see encodeLines),
// goes on as wrapperEnv, which reads the variables (envBlock) that follow
// them, prints "A" (it has the request) and goes on as wrapperRun. The launcher
// makes it a process group leader first where it can, with setsid, so that
// the command needs no exec of setsid. A watchdog, a sleep whose end (its
// SIGCHLD) ends the wrapper, stops it should no request come within its idle
// time plus warmSlack, as a closed stream does not always close its stdin
// (kwok's does not). The wrapper reaps the sleep before it goes on or exits:
// a container's PID 1 often reaps no orphans, so none may be left.
//
// A command runs at most once: a stream that ended by an exit status
// without the "A" never ran the request (the wrapper exited first), so the
// command gets an exec of its own; one that broke without it may have run
// it, and is a broken stream like any other.

// warmLauncher runs the script in $1 with the remaining parameters, through
// setsid when the shell leads no process group and setsid is there.
const warmLauncher = `_rdev_leader() { set -f; set -- $1; set +f; [ "$3" = "$$" ]; }
_rdev_script=$1
shift
if read -r _rdev_st 2>/dev/null </proc/$$/stat && ! _rdev_leader "${_rdev_st##*) }" && command -v setsid >/dev/null 2>&1; then
	exec setsid /bin/sh -c "$_rdev_script" rdev-warm "$@"
fi
eval "$_rdev_script"`

// warmScript's parameters are its idle time in seconds and the directory of
// the pid files.
const warmScript = `_rdev_idle=$1 _rdev_dir=$2
` + wrapperSetup + `trap 'wait "$_rdev_w" 2>/dev/null; exit 0' CHLD
sleep "$_rdev_idle" </dev/null >/dev/null 2>&1 &
_rdev_w=$!
printf R
IFS= read -r _rdev_k || { trap - CHLD; kill "$_rdev_w" 2>/dev/null; wait "$_rdev_w" 2>/dev/null; exit 0; }
trap - CHLD
kill "$_rdev_w" 2>/dev/null
wait "$_rdev_w" 2>/dev/null
set --
while [ "$_rdev_k" -gt 0 ]; do
	_rdev_get || exit 0
	set -- "$@" "$_rdev_l"
	_rdev_k=$((_rdev_k-1))
done
_rdev_noenv() { exit 0; }
` + wrapperEnv + `printf A
` + wrapperRun

const (
	// DefaultWarmIdle is how long a project's warm exec stream waits for
	// its next command before it is closed.
	DefaultWarmIdle = 30 * time.Second
	// warmSlack is how much longer than the idle time the warm wrapper
	// waits in the container, so that rdev always closes it first.
	warmSlack = 30 * time.Second
	// warmCloseGrace is how long a closed warm stream may take to end by
	// itself before it is cut.
	warmCloseGrace = time.Second
	// maxWarmRequest bounds a request sent over a warm stream; a larger one
	// (a long prompt) gets an exec of its own, its argv in the URL and its
	// variables on stdin as usual.
	maxWarmRequest = 16 << 10
	// warmPerTarget is how many warm streams a project in use keeps: two,
	// so that commands back to back each find one ready while the next
	// one opens.
	warmPerTarget = 2
	// warmMarks are what the warm wrapper prints before the command's
	// output: once it runs, and once it has the request.
	warmMarks = "RA"
)

// warmStream is one exec stream running the warm wrapper.
type warmStream struct {
	in     *io.PipeWriter
	stdout *relay
	stderr *relay
	// ready is closed when the wrapper runs; done when the stream ended,
	// with its error in err.
	ready  chan struct{}
	done   chan struct{}
	err    error
	cancel context.CancelFunc
}

// close ends the stream: it closes its stdin, so that the wrapper of a
// runtime that passes EOF on exits and the stream ends by itself, and
// cancels it after warmCloseGrace if it has not (kwok passes no EOF).
func (w *warmStream) close() {
	_ = w.in.Close()
	t := time.AfterFunc(warmCloseGrace, w.cancel)
	go func() {
		<-w.done
		t.Stop()
	}()
}

// send hands the stream over to a command: its output goes to stdout and
// stderr from now on, and the request is written to the wrapper. It
// returns false, with the stream closed, if the stream ended before it could
// take any of the request.
func (w *warmStream) send(req []byte, stdout, stderr io.Writer) bool {
	w.stdout.attach(stdout)
	w.stderr.attach(stderr)
	// The pipe hands the request over in one read (it is at most
	// maxWarmRequest bytes, and client-go reads stdin 32 KiB at a time).
	if _, err := w.in.Write(req); err != nil {
		w.close()
		return false
	}
	// The command's stdin is empty; closing ours lets the runtime end the
	// stream as soon as the command has ended.
	_ = w.in.Close()
	return true
}

// wait returns the stream's error once it ended.
func (w *warmStream) wait() error {
	<-w.done
	return w.err
}

// took reports whether the wrapper had taken the request: if not, and the
// stream ended by an exit status, it ran nothing.
func (w *warmStream) took() bool { return w.stdout.marked() }

// relay forwards a stream's output to the writer it is attached to, after
// the marks the warm wrapper prints first (stdout's relay only), closing
// ready once the first arrived. Output before attach is dropped (there
// should be none).
type relay struct {
	mu    sync.Mutex
	w     io.Writer
	marks string
	ready chan struct{}
}

func (r *relay) Write(p []byte) (int, error) {
	n := len(p)
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(p) > 0 && r.marks != "" && p[0] == r.marks[0] {
		p, r.marks = p[1:], r.marks[1:]
		if r.ready != nil {
			close(r.ready)
			r.ready = nil
		}
	}
	if r.w != nil && len(p) > 0 {
		_, _ = r.w.Write(p) // a gate, which does not fail
	}
	return n, nil
}

// marked reports whether every mark arrived.
func (r *relay) marked() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.marks == ""
}

func (r *relay) attach(w io.Writer) {
	r.mu.Lock()
	r.w = w
	r.mu.Unlock()
}

// warmPool holds up to warmPerTarget warm streams per target, ready or
// still opening, oldest first.
type warmPool struct {
	streams streamer
	dir     string // of the pid files
	idle    time.Duration
	slack   time.Duration
	// up tells whether new streams may be opened now (the breaker is not
	// open).
	up func() bool

	mu     sync.Mutex
	warm   map[Target][]*warmStream
	closed bool
}

func newWarmPool(s streamer, dir string, idle time.Duration, up func() bool) *warmPool {
	return &warmPool{streams: s, dir: dir, idle: idle, slack: warmSlack, up: up, warm: make(map[Target][]*warmStream)}
}

// take returns t's oldest warm stream, ready or still opening, or nil, and
// opens streams up to warmPerTarget, as the project is in use.
func (p *warmPool) take(t Target) *warmStream {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	var w *warmStream
	if ws := p.warm[t]; len(ws) > 0 {
		w = ws[0]
		p.warm[t] = ws[1:]
	}
	for len(p.warm[t]) < warmPerTarget && p.up() {
		p.warm[t] = append(p.warm[t], p.open(t))
	}
	if len(p.warm[t]) == 0 {
		delete(p.warm, t)
	}
	return w
}

// open starts a warm stream to t. p.mu is held.
func (p *warmPool) open(t Target) *warmStream {
	ctx, cancel := context.WithCancel(context.Background())
	r, in := io.Pipe()
	w := &warmStream{in: in, cancel: cancel, ready: make(chan struct{}), done: make(chan struct{}), stderr: &relay{}}
	w.stdout = &relay{marks: warmMarks, ready: w.ready}
	argv := []string{"/bin/sh", "-c", warmLauncher, "rdev-warm", warmScript, seconds(p.idle + p.slack), p.dir}
	go func() {
		w.err = p.streams.Stream(ctx, t, argv, r, w.stdout, w.stderr)
		close(w.done)
		cancel()
		_ = r.CloseWithError(io.ErrClosedPipe)
		p.drop(t, w)
	}()
	time.AfterFunc(p.idle, func() {
		if p.drop(t, w) {
			w.close()
		}
	})
	return w
}

// drop removes w, if it is still one of t's warm streams, and reports
// whether it was.
func (p *warmPool) drop(t Target, w *warmStream) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	ws := p.warm[t]
	i := slices.Index(ws, w)
	if i < 0 {
		return false
	}
	if ws = slices.Delete(ws, i, i+1); len(ws) == 0 {
		delete(p.warm, t)
	} else {
		p.warm[t] = ws
	}
	return true
}

// count returns how many warm streams are ready and how many still opening.
func (p *warmPool) count() (ready, opening int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ws := range p.warm {
		for _, w := range ws {
			select {
			case <-w.ready:
				ready++
			default:
				opening++
			}
		}
	}
	return ready, opening
}

// close closes every warm stream, opens no more, and returns once the
// streams not taken by commands have ended.
func (p *warmPool) close() {
	p.mu.Lock()
	p.closed = true
	warm := p.warm
	p.warm = nil
	p.mu.Unlock()
	for _, ws := range warm {
		for _, w := range ws {
			w.close()
		}
	}
	for _, ws := range warm {
		for _, w := range ws {
			<-w.done
		}
	}
}

// start sends params, the wrapper's positional parameters, followed by env,
// the variables' envBlock, to t's warm stream, if there is one to take them. It returns the stream, or nil when
// the command needs an exec of its own: no warm stream, a request too large,
// or a stream that ended before it took the request (nothing ran then). A
// warm stream still opening is waited for, until ctx ends (with ctx's
// error, nothing run).
func (p *warmPool) start(ctx context.Context, t Target, params []string, env []byte, stdout, stderr io.Writer) (*warmStream, error) {
	w := p.take(t)
	if w == nil {
		return nil, nil
	}
	req := append(encodeLines(params), env...)
	if len(req) > maxWarmRequest {
		w.close()
		return nil, nil
	}
	select {
	case <-w.ready:
	case <-w.done:
		return nil, nil
	case <-ctx.Done():
		w.close()
		return nil, ctx.Err()
	}
	if !w.send(req, stdout, stderr) {
		return nil, nil
	}
	return w, nil
}

// seconds returns d in whole seconds, rounded up, for sleep.
func seconds(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
}
