// Package sqlite opens rdev's embedded store: a SQLite file through the pure-Go
// driver modernc.org/sqlite, served by bunstore with bun's sqlitedialect.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	modernc "modernc.org/sqlite"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/bunstore"
)

// busyTimeoutMillis is how long a connection waits for another's write lock
// before failing with SQLITE_BUSY. SQLite's wait polls, less often the longer
// it has waited, so under a steady stream of writers an unlucky one can find
// the lock taken at every poll until the stream pauses: at 5 s, four writers
// under the race detector starved one of them past it.
const busyTimeoutMillis = 30000

// pageSize is the page size of new databases. Output chunks of up to 64 KiB
// are most of what the store writes, and SQLite writes the WAL one page at a
// time (two system calls a page) and spreads a large row over overflow pages:
// at 16 KiB a chunk costs a quarter of the pages, and so of the calls, it
// costs at the default 4 KiB. Larger pages help output further but make every
// small commit (a status change, a claim) write and checksum more. A database
// keeps the page size it was created with: the pragma does nothing on one
// that exists.
const pageSize = 16 << 10

// walAutocheckpointPages is when a writing connection checkpoints the WAL
// itself, after its commit: at 2,048 pages, 32 MiB at pageSize (8 MiB in a
// database made with 4 KiB pages). The checkpointer (see checkpoint.go) has
// usually copied all but the last few pages by then, so the writer's
// checkpoint is short, and it is what rewinds the WAL to its start: SQLite
// rewinds only when a writer begins with the WAL fully copied, which a
// checkpoint running beside a steady stream of commits seldom leaves it.
const walAutocheckpointPages = 2048

// journalSizeLimit caps, in bytes, the WAL file kept once the WAL has been
// rewound; without it the file stays as large as the largest burst of
// writes made it. It is above the size at which writers checkpoint, so a
// steady stream of output does not truncate and regrow the file every time.
const journalSizeLimit = 64 << 20

// Open opens (creating if needed, with its parent directory) the SQLite
// database at path and returns a store on it. It applies no migrations: run
// store.Migrate(ctx, migrations.SQLite()). It returns EUNAVAILABLE if the file
// cannot be opened.
//
// The database uses WAL, so readers never wait for the writer, and every
// transaction begins IMMEDIATE, taking the write lock up front: a
// read-then-write transaction thus waits (up to busy_timeout) for another
// writer instead of failing with SQLITE_BUSY when it tries to upgrade.
//
// The bytes of command output are not in the database but in segment files
// beside it, in OutputDir(path): SQLite would write them twice, to the WAL
// and then to the database.
//
// Committed pages are copied from the WAL into the database (checkpointed)
// by a goroutine of the store, not by the committing caller; closing the
// store stops it.
func Open(ctx context.Context, path string) (*bunstore.Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: create directory for %s: %w", path, err)
	}
	if err := ownerOnly(abs); err != nil {
		return nil, domain.Errorf(domain.EUNAVAILABLE, "sqlite: %s: %v", path, err)
	}
	base, err := modernc.NewConnector(dsn(abs))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	conn := newConnector(base)
	sqldb := sql.OpenDB(conn)
	// WAL allows one writer and many readers; more connections than that
	// only queue on the write lock.
	sqldb.SetMaxOpenConns(max(4, runtime.GOMAXPROCS(0)))
	sqldb.SetMaxIdleConns(max(4, runtime.GOMAXPROCS(0)))
	store := bunstore.New(bun.NewDB(sqldb, sqlitedialect.New()))
	store.StoreOutputIn(OutputDir(abs))
	if err := store.Ping(ctx); err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := conn.startCheckpointer(ctx); err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("sqlite: open %s: start checkpointer: %w", path, err)
	}
	return store, nil
}

// ownerOnly makes the database file at abs, creating it empty if it is
// missing, and its WAL and shared-memory files, if there, readable and
// writable by their owner only. SQLite gives the -wal and -shm files it
// creates the mode of the database file, so they stay 0600 too.
func ownerOnly(abs string) error {
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600) //nolint:gosec // the path is the operator's
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	for _, name := range []string{abs, abs + "-wal", abs + "-shm"} {
		if err := os.Chmod(name, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// OutputDir is the directory beside the database at path that holds the
// bytes of its command output, in segment files (see bunstore.StoreOutputIn):
// path with "-output" appended, as SQLite appends "-wal" for its WAL.
func OutputDir(path string) string {
	return path + "-output"
}

// dsn is a SQLite URI for the file at the absolute path abs, with the
// settings every connection needs. The pragmas run on each new connection.
func dsn(abs string) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMillis))
	// page_size must run before journal_mode: switching a new database to
	// WAL writes its first page, which fixes the page size. The driver runs
	// the _pragma list (sorted by name, so journal_mode would come before
	// page_size) before the _journal_mode parameter, hence that parameter.
	q.Add("_pragma", fmt.Sprintf("page_size(%d)", pageSize))
	q.Set("_journal_mode", "WAL")
	// In WAL mode NORMAL never corrupts the database; a power cut may lose
	// the last commits, while a process crash loses nothing. It saves an
	// fsync per commit, which output appends make many of.
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", walAutocheckpointPages))
	q.Add("_pragma", fmt.Sprintf("journal_size_limit(%d)", journalSizeLimit))
	q.Add("_pragma", "foreign_keys(ON)")
	// Deleted and overwritten content is zeroed where that costs no extra
	// I/O, so an env value cleared at a command's start is not left in a
	// page's free space.
	q.Add("_pragma", "secure_delete(FAST)")
	q.Set("_txlock", "immediate")
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	return u.String()
}
