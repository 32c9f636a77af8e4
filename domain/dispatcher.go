package domain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	Output       OutputConfig
	Logger       *slog.Logger
	// Tracer traces each command's run; nil traces nothing.
	Tracer CommandTracer
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

	mu      sync.Mutex
	running map[string]context.CancelCauseFunc
	freed   chan struct{}
	wg      sync.WaitGroup
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
	return &Dispatcher{
		repo: repo, projects: projects, exec: exec, hub: hub, bcast: bcast, cfg: cfg, log: log,
		now: time.Now, running: map[string]context.CancelCauseFunc{}, freed: make(chan struct{}, 1),
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
			d.wg.Wait()
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
	claimed, err := d.repo.ClaimCommands(ctx, ClaimRequest{
		Owner: d.cfg.Owner, Max: free, PerProject: d.cfg.PerProject,
		LeaseUntil: now.Add(d.cfg.LeaseTTL), Now: now,
	})
	if err != nil {
		if ctx.Err() == nil {
			d.log.Warn("claiming commands", "err", err)
		}
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

func (d *Dispatcher) stopLocal(id string, cause error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if cancel, ok := d.running[id]; ok {
		cancel(cause)
	}
}

// heartbeat renews this process's leases, picks up cancel requests made
// elsewhere, and interrupts commands whose process died.
func (d *Dispatcher) heartbeat(ctx context.Context) {
	t := time.NewTicker(d.cfg.LeaseTTL / 3)
	defer t.Stop()
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
			cancel, err := d.repo.RenewLeases(ctx, d.cfg.Owner, ids, now.Add(d.cfg.LeaseTTL))
			if err != nil {
				d.log.Warn("renewing leases", "err", err)
			}
			for _, id := range cancel {
				d.cancelLocal(id)
			}
		}
		expired, err := d.repo.ExpireLeases(ctx, now, ExpiredEntry)
		if err != nil {
			d.log.Warn("expiring leases", "err", err)
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
	rec := newRecorder(c.ID, d.cfg.Output, d.repo, d.hub, d.bcast, d.log, d.now)
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
	if err == nil {
		res, err = d.exec.Exec(xctx, ExecRequest{Project: p, Argv: c.Argv, Env: c.Env, Workdir: c.Workdir},
			rec.writer(Stdout), rec.writer(Stderr))
	}
	var fin Finish
	fin.OutputBytes, fin.LastSeq, fin.Truncated = rec.close()
	fin.FinishedAt = d.now().UTC().Truncate(time.Microsecond)
	d.decide(&fin, c, res, err, context.Cause(xctx))
	if fin.Status == CommandCancelled {
		// Keep the reason the cancel request stored (who cancelled it).
		if cur, ferr := d.repo.FindCommandByID(context.WithoutCancel(ctx), c.ID); ferr == nil && cur.Reason != "" {
			fin.Reason = cur.Reason
		}
	}

	final, ferr := d.repo.FinishCommand(context.WithoutCancel(ctx), c.ID, d.cfg.Owner, fin, FinishEntry(c, fin))
	if ferr != nil {
		// The lease was lost (the command is already INTERRUPTED) or the
		// database is down; either way the stored state stands.
		d.log.WarnContext(ctx, "recording the end of a command", "command", c.ID, "status", fin.Status, "err", ferr)
		ended = c.Clone()
		ended.Status, ended.ExitCode, ended.Signal, ended.Reason, ended.FinishedAt = fin.Status, fin.ExitCode, fin.Signal, fin.Reason, &fin.FinishedAt
		return
	}
	ended = final
	publishStatus(context.WithoutCancel(ctx), d.hub, d.bcast, final)
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
