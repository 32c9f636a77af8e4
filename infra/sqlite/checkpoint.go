package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"time"

	modernc "modernc.org/sqlite"
)

// checkpointDelay is how long the checkpointer waits after a commit before it
// checkpoints: long enough for that commit to finish (its hook runs inside
// it) and for a stream of commits to share one checkpoint, short enough that
// the WAL holds only a few megabytes more than the last checkpoint left.
const checkpointDelay = 20 * time.Millisecond

// trailingDelay is how long after a checkpoint with no commit since a second
// one runs, for the pages of a commit that was still finishing.
const trailingDelay = 500 * time.Millisecond

// connector opens the pool's connections through modernc's connector, with a
// commit hook that wakes the checkpointer, and runs the checkpointer: a
// goroutine that copies committed pages from the WAL into the database after
// commits. Otherwise the committing caller does it, every 1,000 pages
// (SQLite's default), which was a third to a half of the time AppendOutput
// took. database/sql calls Close when the pool closes, which stops it.
type connector struct {
	driver.Connector

	// committed has room for one signal: any number of commits made before
	// the checkpointer looks ask for one checkpoint.
	committed chan struct{}

	stop context.CancelFunc // nil until startCheckpointer, and after Close
	done chan struct{}      // closed when the checkpointer has returned
	db   *sql.DB            // the checkpointer's connection
}

// commitHooker is the method of modernc's connections that installs
// sqlite3_commit_hook.
type commitHooker interface {
	RegisterCommitHook(modernc.CommitHookFn)
}

func newConnector(base driver.Connector) *connector {
	return &connector{Connector: base, committed: make(chan struct{}, 1)}
}

// Connect opens a pool connection. It is returned as modernc made it, not
// wrapped, so database/sql still sees every optional interface it has.
func (c *connector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	if h, ok := conn.(commitHooker); ok {
		h.RegisterCommitHook(c.onCommit)
	}
	return conn, nil
}

// onCommit runs inside every commit of a pool connection, on the committing
// goroutine: it must not block, and returns 0 to let the commit go on.
func (c *connector) onCommit() int32 {
	select {
	case c.committed <- struct{}{}:
	default:
	}
	return 0
}

// startCheckpointer opens the checkpointer's connection and starts it. The
// connection is a pool of its own, outside the store's: the checkpointer
// never waits for a free connection, and its commits (it makes none) would
// not wake it.
func (c *connector) startCheckpointer(ctx context.Context) error {
	db := sql.OpenDB(c.Connector)
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		return errors.Join(err, db.Close())
	}
	runCtx, stop := context.WithCancel(context.Background())
	c.db, c.stop, c.done = db, stop, make(chan struct{})
	go c.checkpointLoop(runCtx)
	return nil
}

// checkpointLoop runs a passive checkpoint, which never waits for readers or
// writers, checkpointDelay after commits, until ctx ends. A commit's hook
// runs before the commit is done, so a slow commit can still be finishing
// when that checkpoint runs and leave its pages behind: a second, trailing
// checkpoint trailingDelay later picks them up, unless another commit comes
// first and starts the round again. Errors are dropped: a checkpoint that
// fails (the store closing, another process checkpointing) leaves its pages
// in the WAL, which stays valid, for the next one, or for the writers' own
// checkpoint at wal_autocheckpoint.
func (c *connector) checkpointLoop(ctx context.Context) {
	defer close(c.done)
	delay := time.NewTimer(checkpointDelay)
	delay.Stop()
	wait := func(d time.Duration) bool {
		delay.Reset(d)
		select {
		case <-ctx.Done():
			delay.Stop()
			return false
		case <-delay.C:
			return true
		}
	}
	checkpoint := func() { _, _ = c.db.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)") }
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.committed:
		}
		for again := true; again; {
			if !wait(checkpointDelay) {
				return
			}
			checkpoint()
			delay.Reset(trailingDelay)
			select {
			case <-ctx.Done():
				delay.Stop()
				return
			case <-c.committed:
				delay.Stop()
			case <-delay.C:
				checkpoint()
				again = false
			}
		}
	}
}

// Close stops the checkpointer, waiting for it, and closes its connection.
// database/sql calls it from DB.Close once, after closing the pool's idle
// connections; this connection is then usually the database's last, and
// SQLite checkpoints what is left and removes the WAL as it closes.
func (c *connector) Close() error {
	if c.stop == nil {
		return nil
	}
	c.stop()
	<-c.done
	c.stop = nil
	return c.db.Close()
}
