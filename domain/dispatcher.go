package domain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"
)

// DispatcherConfig shapes a Dispatcher.
type DispatcherConfig struct {
	// Owner names this process in leases; unique per process.
	Owner string
	// Concurrency is how many commands this process runs at once.
	Concurrency int
	// PerProject is how many commands run at once in one project, across
	// every process.
	PerProject int
	// LeaseTTL is how long a running command's lease lasts unless renewed;
	// it is renewed every LeaseTTL/3.
	LeaseTTL time.Duration
	// PollInterval is how often the queue is checked without a wake-up.
	PollInterval time.Duration
	// DrainTimeout is how long Run, once its context ends, lets running
	// commands finish (claiming nothing new) before it interrupts them.
	DrainTimeout time.Duration
	// FinishGrace is how long, once Run's context has ended and running
	// commands were stopped, the ends that storage refuses are still tried
	// before Run gives up on them (their commands are then interrupted
	// when their leases expire).
	FinishGrace time.Duration
	Output      OutputConfig
	Logger      *slog.Logger
	// Tracer traces each command's run; nil traces nothing.
	Tracer CommandTracer
	// Writes, if not nil, learns whether storage takes output and results.
	Writes *WriteHealth
	// Journal, if not nil, keeps the ends storage refuses on this machine
	// until they are stored, across restarts.
	Journal FinishJournal
	// Secrets, if not nil, returns what a project's secrets give each of
	// its commands (SecretService.Open), opened just before the command
	// starts. A command's own Env wins over its secret variables: it can
	// replace a secret's value for itself, never read it.
	Secrets func(ctx context.Context, projectID string) (ExecSecrets, error)
	// EnvSealer opens the env values that CommandService.SealEnvWith
	// sealed, as each command starts. A command with a sealed value that
	// does not open fails, its reason naming the variable.
	EnvSealer SecretSealer
	// Gone, if not nil, reports whether the dispatcher named owner is known
	// to have ended: an earlier process of the same rdev (its predecessor
	// on this host, say). Run takes the commands such owners hold over as
	// it starts, at once, instead of when their leases expire.
	Gone func(owner string) bool
	// Finished, if not nil, is called with each command whose end this
	// process stored, once, after its status is published (such as
	// AgentService.Record). Its error is logged; the command's end stands.
	Finished func(ctx context.Context, c *Command) error
}

// Causes of a command's context ending, which decide its final state.
var (
	errCancelled = errors.New("cancelled on request")
	errShutdown  = errors.New("server shutting down")
	errTimedOut  = errors.New("timed out")
	errLeaseLost = errors.New("lease lost")
)

// Dispatcher claims queued commands and runs them with an Executor: at most
// Concurrency at once in this process, with leases renewed while they run,
// and expired leases of dead processes turned INTERRUPTED.
type Dispatcher struct {
	repo     CommandRepository
	projects ProjectRepository
	exec     Executor
	hub      Hub
	bcast    Broadcaster
	cfg      DispatcherConfig
	log      *slog.Logger
	now      func() time.Time

	// claimUnsure is set when a claim failed in a way that may have taken
	// commands all the same (its reply lost); owned by Run's goroutine.
	claimUnsure bool

	mu      sync.Mutex
	running map[string]context.CancelCauseFunc
	freed   chan struct{}
	wg      sync.WaitGroup
	// giveUp ends the retries of results storage refuses, FinishGrace
	// after shutdown.
	giveUp     context.Context
	stopTrying context.CancelFunc
}

// NewDispatcher returns a dispatcher; bcast may be nil in a single process.
func NewDispatcher(repo CommandRepository, projects ProjectRepository, exec Executor, hub Hub, bcast Broadcaster, cfg DispatcherConfig) *Dispatcher {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultCommandLimits.Concurrency
	}
	if cfg.PerProject <= 0 {
		cfg.PerProject = DefaultCommandLimits.PerProject
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 30 * time.Second
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.FinishGrace <= 0 {
		cfg.FinishGrace = 30 * time.Second
	}
	if cfg.Owner == "" {
		cfg.Owner = NewID(time.Now())
	}
	if cfg.Tracer == nil {
		cfg.Tracer = NopCommandTracer{}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	giveUp, stopTrying := context.WithCancel(context.Background())
	return &Dispatcher{
		repo: repo, projects: projects, exec: exec, hub: hub, bcast: bcast, cfg: cfg, log: log,
		now: time.Now, running: map[string]context.CancelCauseFunc{}, freed: make(chan struct{}, 1),
		giveUp: giveUp, stopTrying: stopTrying,
	}
}

// Run dispatches until ctx ends. Then it claims nothing more, lets running
// commands finish for up to DrainTimeout (still renewing their leases and
// honouring cancels), stops the rest (they end INTERRUPTED), and returns once
// every end is recorded.
func (d *Dispatcher) Run(ctx context.Context) error {
	sub := d.hub.Subscribe(QueueTopic, 1024)
	defer func() { sub.Close() }()
	base, stopAll := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stopAll(errShutdown)
	hbCtx, stopHeartbeat := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHeartbeat()

	if !d.replay(ctx, base) {
		d.takeOver(ctx)
	}
	var hb sync.WaitGroup
	hb.Go(func() { d.heartbeat(hbCtx) })
	poll := time.NewTicker(d.cfg.PollInterval)
	defer poll.Stop()
	// A freed slot is filled after claimBatchDelay, so slots freed together
	// under load are filled by one claim rather than one claim each.
	batch := time.NewTimer(time.Hour)
	batch.Stop()
	for {
		d.dispatch(ctx, base)
	wait:
		select {
		case <-ctx.Done():
			d.drain(sub)
			stopAll(errShutdown)
			d.waitOrGiveUp()
			stopHeartbeat()
			hb.Wait()
			return nil
		case e, ok := <-sub.Events():
			if !ok {
				sub = d.hub.Subscribe(QueueTopic, 1024)
				continue
			}
			if e.Kind == EventCancel {
				d.cancelLocal(e.CommandID)
			}
		case <-d.freed:
			batch.Reset(claimBatchDelay)
			goto wait
		case <-batch.C:
		case <-poll.C:
		}
	}
}

// replay stores the ends of commands that an earlier process kept in the
// journal because storage refused them. Those still refused are tried again
// in the background (as long as Run's own runs are); then it reports true,
// and the caller must not take over ended owners' commands yet, among
// which are theirs.
func (d *Dispatcher) replay(ctx, base context.Context) (refused bool) {
	if d.cfg.Journal == nil {
		return false
	}
	kept, err := d.cfg.Journal.Pending()
	if err != nil {
		d.log.Error("reading the results journal", "err", err)
	}
	for _, p := range kept {
		c := &Command{
			ID: p.Lease.CommandID, ProjectID: p.ProjectID, KeyID: p.KeyID, StartedAt: p.StartedAt,
			Status: CommandRunning, Owner: p.Lease.Owner, LeaseEpoch: p.Lease.Epoch,
		}
		tctx, cancel := context.WithTimeout(ctx, finishTimeout)
		final, err := d.repo.FinishCommand(tctx, p.Lease, p.Finish, FinishEntry(c, p.Finish))
		cancel()
		switch code := ErrorCode(err); {
		case err == nil:
			d.log.Info("recorded the end of a command that an earlier process kept", "command", c.ID, "status", final.Status)
			d.dropKept(c.ID)
			publishStatus(ctx, d.hub, d.bcast, final)
			d.finished(ctx, final)
		case errors.Is(err, ErrLeaseLost), code == EINVALID, code == ENOTFOUND:
			d.log.Warn("the end of a command an earlier process kept was not recorded", "command", c.ID, "status", p.Finish.Status, "err", err)
			d.dropKept(c.ID)
		default:
			refused = true
			d.wg.Go(func() {
				if final, err := d.finish(context.WithoutCancel(base), c, p.Finish); err == nil {
					publishStatus(context.WithoutCancel(base), d.hub, d.bcast, final)
					d.finished(context.WithoutCancel(base), final)
				}
			})
		}
	}
	return refused
}

// keep records a command's end in the journal, if there is one.
func (d *Dispatcher) keep(c *Command, fin Finish) {
	if d.cfg.Journal == nil {
		return
	}
	p := PendingFinish{Lease: c.Lease(), Finish: fin, KeyID: c.KeyID, ProjectID: c.ProjectID, StartedAt: c.StartedAt}
	if err := d.cfg.Journal.Keep(p); err != nil {
		d.log.Error("keeping the end of a command in the results journal", "command", c.ID, "err", err)
	}
}

// dropKept forgets a command's end in the journal, if there is one.
func (d *Dispatcher) dropKept(id string) {
	if d.cfg.Journal == nil {
		return
	}
	if err := d.cfg.Journal.Drop(id); err != nil {
		d.log.Error("dropping the end of a command from the results journal", "command", id, "err", err)
	}
}

// takeOver ends, as INTERRUPTED, the commands held by dispatchers that Gone
// reports ended: their processes died with them, and their slots are freed
// now rather than when their leases expire.
func (d *Dispatcher) takeOver(ctx context.Context) {
	if d.cfg.Gone == nil {
		return
	}
	owners, err := d.repo.RunningOwners(ctx)
	if err != nil {
		d.log.Warn("looking for commands of an earlier process", "err", err)
		return
	}
	var gone []string
	for _, o := range owners {
		if o != d.cfg.Owner && d.cfg.Gone(o) {
			gone = append(gone, o)
		}
	}
	if len(gone) == 0 {
		return
	}
	ended, err := d.repo.InterruptHeldBy(ctx, gone, d.now().UTC(), ExpiredEntry)
	if err != nil {
		d.log.Warn("taking over the commands of an earlier process", "owners", gone, "err", err)
		return
	}
	for _, c := range ended {
		d.log.Warn("command interrupted: the process running it ended", "command", c.ID, "owner", c.Owner)
		publishStatus(ctx, d.hub, d.bcast, c)
	}
}

// waitOrGiveUp waits for every run to end, and after FinishGrace ends the
// retries of results that storage still refuses.
func (d *Dispatcher) waitOrGiveUp() {
	done := make(chan struct{})
	go func() {
		d.wg.Wait()
		close(done)
	}()
	grace := time.NewTimer(d.cfg.FinishGrace)
	defer grace.Stop()
	select {
	case <-done:
	case <-grace.C:
		d.stopTrying()
		<-done
	}
}

// claimBatchDelay is how long a freed slot waits for others before the
// dispatcher claims work for them.
const claimBatchDelay = time.Millisecond

// drain waits up to DrainTimeout for running commands to finish, passing
// cancel requests on meanwhile.
func (d *Dispatcher) drain(sub HubSubscription) {
	if d.cfg.DrainTimeout <= 0 {
		return
	}
	done := make(chan struct{})
	go func() {
		d.wg.Wait()
		close(done)
	}()
	timer := time.NewTimer(d.cfg.DrainTimeout)
	defer timer.Stop()
	d.mu.Lock()
	n := len(d.running)
	d.mu.Unlock()
	if n > 0 {
		d.log.Info("waiting for running commands to finish", "running", n, "timeout", d.cfg.DrainTimeout.String())
	}
	for {
		select {
		case <-done:
			return
		case <-timer.C:
			return
		case e, ok := <-sub.Events():
			if !ok {
				sub = d.hub.Subscribe(QueueTopic, 1024)
				defer sub.Close()
				continue
			}
			if e.Kind == EventCancel {
				d.cancelLocal(e.CommandID)
			}
		}
	}
}

// dispatch claims as many commands as there are free slots and starts them.
func (d *Dispatcher) dispatch(ctx, base context.Context) {
	d.mu.Lock()
	free := d.cfg.Concurrency - len(d.running)
	d.mu.Unlock()
	if free <= 0 || ctx.Err() != nil {
		return
	}
	now := d.now().UTC().Truncate(time.Microsecond)
	if d.claimUnsure && !d.releaseUnstarted(ctx, now) {
		return
	}
	claimed, err := d.repo.ClaimCommands(ctx, ClaimRequest{
		Owner: d.cfg.Owner, Max: free, PerProject: d.cfg.PerProject,
		LeaseUntil: now.Add(d.cfg.LeaseTTL), Now: now,
	})
	if err != nil {
		if ctx.Err() == nil {
			d.log.Warn("claiming commands", "err", err)
		}
		d.claimUnsure = true
		return
	}
	for _, c := range claimed {
		rctx, cancel := context.WithCancelCause(base)
		d.mu.Lock()
		d.running[c.ID] = cancel
		d.mu.Unlock()
		d.wg.Go(func() {
			defer d.release(c.ID)
			d.run(rctx, c)
		})
	}
}

// releaseUnstarted puts back in the queue the commands a failed claim may
// have taken for this process without its knowing (the claim committed, its
// reply was lost): they hold leases nobody renews, and would end
// INTERRUPTED without having run. It reports whether that is done.
func (d *Dispatcher) releaseUnstarted(ctx context.Context, now time.Time) bool {
	d.mu.Lock()
	started := make([]string, 0, len(d.running))
	for id := range d.running {
		started = append(started, id)
	}
	d.mu.Unlock()
	released, err := d.repo.ReleaseUnstarted(ctx, d.cfg.Owner, started, now)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Warn("looking for commands a failed claim took", "err", err)
		}
		return false
	}
	d.claimUnsure = false
	for _, c := range released {
		d.log.Warn("command back in the queue: a claim took it, but its reply was lost", "command", c.ID, "status", c.Status)
		publishStatus(ctx, d.hub, d.bcast, c)
	}
	return true
}

func (d *Dispatcher) release(id string) {
	d.mu.Lock()
	if cancel, ok := d.running[id]; ok {
		cancel(nil)
		delete(d.running, id)
	}
	d.mu.Unlock()
	select {
	case d.freed <- struct{}{}:
	default:
	}
}

// cancelLocal stops a command if this process runs it.
func (d *Dispatcher) cancelLocal(id string) { d.stopLocal(id, errCancelled) }

// stopLocal stops a command with cause if this process runs it, and
// reports whether it does.
func (d *Dispatcher) stopLocal(id string, cause error) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	cancel, ok := d.running[id]
	if ok {
		cancel(cause)
	}
	return ok
}

// heartbeat renews this process's leases, picks up cancel requests made
// elsewhere, and interrupts commands whose process died. It expires leases
// only once storage has answered it for a whole LeaseTTL: after an outage,
// or when this process starts, every other process (and an end being
// retried, or replayed from the journal) gets a lease's length of working
// storage to renew or record before its leases are held against it.
func (d *Dispatcher) heartbeat(ctx context.Context) {
	t := time.NewTicker(d.cfg.LeaseTTL / 3)
	defer t.Stop()
	var answering time.Time // since when storage has answered every call
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.mu.Lock()
		ids := make([]string, 0, len(d.running))
		for id := range d.running {
			ids = append(ids, id)
		}
		d.mu.Unlock()
		now := d.now().UTC()
		if len(ids) > 0 {
			r, err := d.repo.RenewLeases(ctx, d.cfg.Owner, ids, now.Add(d.cfg.LeaseTTL))
			if err != nil {
				// Until this process renews its own leases, it must not
				// expire any: its own may be among the expired.
				d.log.Warn("renewing leases", "err", err)
				answering = time.Time{}
				continue
			}
			for _, id := range r.Cancel {
				d.cancelLocal(id)
			}
			for _, id := range r.Lost {
				if d.stopLocal(id, errLeaseLost) {
					d.log.Warn("command lost its lease: another process ended it; stopping it", "command", id)
				}
			}
		}
		if answering.IsZero() {
			answering = now
		}
		if now.Sub(answering) < d.cfg.LeaseTTL {
			continue
		}
		expired, err := d.repo.ExpireLeases(ctx, now, ExpiredEntry)
		if err != nil {
			d.log.Warn("expiring leases", "err", err)
			answering = time.Time{}
		}
		for _, c := range expired {
			d.log.Warn("command interrupted: its lease expired", "command", c.ID, "owner", c.Owner)
			if c.Owner == d.cfg.Owner {
				// This process could not renew in time: the command is
				// recorded INTERRUPTED, so its process must stop too.
				d.stopLocal(c.ID, errLeaseLost)
			}
			publishStatus(ctx, d.hub, d.bcast, c)
		}
	}
}

// run executes one claimed command and records how it ended, in the
// command's span.
func (d *Dispatcher) run(ctx context.Context, c *Command) {
	ctx, endSpan := d.cfg.Tracer.StartCommand(ctx, c)
	ended := c
	defer func() { endSpan(ended) }()
	publishStatus(ctx, d.hub, d.bcast, c)
	rec := newRecorder(c.Lease(), d.cfg.Output, recorderDeps{
		repo: d.repo, hub: d.hub, bcast: d.bcast, log: d.log, now: d.now, writes: d.cfg.Writes,
		onLeaseLost: func() { d.stopLocal(c.ID, errLeaseLost) },
		giveUp:      d.giveUp.Done(),
	})
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultCommandLimits.DefaultTimeout
	}
	xctx, cancel := context.WithTimeoutCause(ctx, timeout, errTimedOut)
	defer cancel()

	var res ExecResult
	p, err := d.projects.FindProjectByID(xctx, c.ProjectID)
	if err == nil && p.Status != ProjectRunning {
		err = Errorf(ECONFLICT, "project %s is %s", p.ID, p.Status)
	}
	var (
		secrets ExecSecrets
		env     map[string]string
	)
	if err == nil {
		env, err = openEnv(d.cfg.EnvSealer, c)
	}
	if err == nil {
		secrets, err = d.execSecrets(xctx, c)
	}
	if err == nil {
		req := ExecRequest{Project: p, Argv: c.Argv, Env: env, SecretFiles: secrets.Files, Workdir: c.Workdir}
		if len(secrets.Env) > 0 {
			req.Env = secrets.Env
			maps.Copy(req.Env, env)
		}
		res, err = d.exec.Exec(xctx, req, rec.writer(Stdout), rec.writer(Stderr))
	}
	// How the process ended is decided now: storing the rest of its output
	// may take long (while storage refuses it), and a shutdown, timeout or
	// cancel that comes meanwhile must not rewrite a clean exit.
	cause, endedAt := context.Cause(xctx), d.now().UTC().Truncate(time.Microsecond)
	out := rec.close(endedAt)
	fin := Finish{OutputBytes: out.total, LastSeq: out.lastSeq, Truncated: out.truncated, LostBytes: out.lostBytes, FinishedAt: endedAt}
	d.decide(&fin, c, res, err, cause)
	if out.leaseLost {
		// Another process ended the command; its end stands.
		ended = c.Clone()
		ended.Status, ended.Reason = CommandInterrupted, "interrupted: this server lost the command's lease"
		return
	}
	if fin.Status == CommandCancelled {
		// Keep the reason the cancel request stored (who cancelled it).
		if cur, ferr := d.repo.FindCommandByID(context.WithoutCancel(ctx), c.ID); ferr == nil && cur.Reason != "" {
			fin.Reason = cur.Reason
		}
	}

	final, ferr := d.finish(context.WithoutCancel(ctx), c, fin)
	// No longer this process's to renew: a renewal that finds it ended
	// must not take it for a lease lost.
	d.release(c.ID)
	if ferr != nil {
		ended = c.Clone()
		ended.Status, ended.ExitCode, ended.Signal, ended.Reason, ended.FinishedAt = fin.Status, fin.ExitCode, fin.Signal, fin.Reason, &fin.FinishedAt
		return
	}
	ended = final
	publishStatus(context.WithoutCancel(ctx), d.hub, d.bcast, final)
	d.finished(context.WithoutCancel(ctx), final)
}

// finished passes c, whose end this process stored, to the Finished hook.
func (d *Dispatcher) finished(ctx context.Context, c *Command) {
	if d.cfg.Finished == nil {
		return
	}
	if err := d.cfg.Finished(ctx, c); err != nil {
		d.log.WarnContext(ctx, "after the end of a command", "command", c.ID, "status", c.Status, "err", err)
	}
}

// execSecrets returns the secrets of c's project, opened. Their values live
// only in what it returns, for the executor; they are never stored, logged
// or traced. While storage is unavailable (a restart, a failover) the
// command waits for it, trying again as finish does, rather than fail for
// an outage; it gives up when ctx ends (its timeout, a cancel) or the
// dispatcher gives up.
func (d *Dispatcher) execSecrets(ctx context.Context, c *Command) (ExecSecrets, error) {
	if d.cfg.Secrets == nil {
		return ExecSecrets{}, nil
	}
	for wait := finishRetryFirst; ; wait = min(2*wait, finishRetryLongest) {
		secrets, err := d.cfg.Secrets(ctx, c.ProjectID)
		if ErrorCode(err) != EUNAVAILABLE {
			return secrets, err
		}
		select {
		case <-ctx.Done():
			return ExecSecrets{}, err
		case <-d.giveUp.Done():
			return ExecSecrets{}, err
		case <-time.After(wait):
		}
	}
}

// Recording a command's end is tried again after finishRetryFirst, doubling
// up to finishRetryLongest, each try given finishTimeout.
const (
	finishRetryFirst   = 100 * time.Millisecond
	finishRetryLongest = 5 * time.Second
	finishTimeout      = 30 * time.Second
)

// finish records how a command ended, trying again while storage refuses it
// (the command keeps its slot, and its lease is renewed meanwhile), until it
// is stored, the lease is found lost (another process ended the command,
// and that end stands), or the dispatcher gives up after shutdown. So a
// command that finished is never reported INTERRUPTED for a database that
// was briefly away.
func (d *Dispatcher) finish(ctx context.Context, c *Command, fin Finish) (*Command, error) {
	var failing time.Time
	defer func() {
		if !failing.IsZero() {
			d.cfg.Writes.recovered()
		}
	}()
	for wait := finishRetryFirst; ; wait = min(wait*2, finishRetryLongest) {
		tctx, cancel := context.WithTimeout(ctx, finishTimeout)
		final, err := d.repo.FinishCommand(tctx, c.Lease(), fin, FinishEntry(c, fin))
		cancel()
		switch code := ErrorCode(err); {
		case err == nil:
			if !failing.IsZero() {
				d.log.InfoContext(ctx, "recorded the end of a command after storage refused it", "command", c.ID, "status", fin.Status, "after", time.Since(failing).Round(time.Millisecond).String())
				d.dropKept(c.ID)
			}
			return final, nil
		case errors.Is(err, ErrLeaseLost), code == EINVALID, code == ENOTFOUND:
			d.log.WarnContext(ctx, "the end of a command was not recorded", "command", c.ID, "status", fin.Status, "err", err)
			if !failing.IsZero() {
				d.dropKept(c.ID)
			}
			return nil, err
		case failing.IsZero():
			failing = time.Now()
			d.cfg.Writes.failed(failing, err)
			d.log.WarnContext(ctx, "recording the end of a command failed: trying again until storage takes it", "command", c.ID, "status", fin.Status, "err", err)
			d.keep(c, fin)
		}
		select {
		case <-d.giveUp.Done():
			if d.cfg.Journal != nil {
				d.log.ErrorContext(ctx, "stopped recording the end of a command at shutdown: it is kept in the results journal for the next rdev on this machine", "command", c.ID, "status", fin.Status, "err", err)
			} else {
				d.log.ErrorContext(ctx, "gave up recording the end of a command at shutdown: it will be interrupted when its lease expires", "command", c.ID, "status", fin.Status, "err", err)
			}
			return nil, err
		case <-time.After(wait):
		}
	}
}

// decide sets a command's final status from how its context and process
// ended.
func (d *Dispatcher) decide(fin *Finish, c *Command, res ExecResult, err, cause error) {
	switch {
	case errors.Is(cause, errTimedOut):
		fin.Status, fin.Reason = CommandTimedOut, fmt.Sprintf("timed out after %s", c.Timeout)
	case errors.Is(cause, errCancelled):
		fin.Status, fin.Reason = CommandCancelled, "cancelled on request"
	case errors.Is(cause, errShutdown):
		fin.Status, fin.Reason = CommandInterrupted, "interrupted: the server shut down"
	case errors.Is(cause, errLeaseLost):
		fin.Status, fin.Reason = CommandInterrupted, "interrupted: this server lost the command's lease"
	case err != nil:
		fin.Status, fin.Reason = CommandFailed, ErrorMessage(err)
		if ErrorCode(err) == EINTERNAL {
			d.log.Error("executing a command", "command", c.ID, "err", err)
		}
		return
	case res.Signal == "" && res.ExitCode == 0:
		fin.Status = CommandSucceeded
	default:
		fin.Status = CommandFailed
		if res.Signal != "" {
			fin.Reason = "killed by " + res.Signal
		} else {
			fin.Reason = fmt.Sprintf("exited with status %d", res.ExitCode)
		}
	}
	if res.Signal != "" {
		fin.Signal = res.Signal
	} else if err == nil {
		fin.ExitCode = new(res.ExitCode)
	}
}

// publishStatus tells subscribers of the command and of its project.
func publishStatus(ctx context.Context, hub Hub, bcast Broadcaster, c *Command) {
	e := Event{Kind: EventStatus, CommandID: c.ID, Command: c, UpTo: c.LastSeq}
	publish(ctx, hub, bcast, CommandTopic(c.ID), e)
	publish(ctx, hub, bcast, ProjectTopic(c.ProjectID), e)
}
