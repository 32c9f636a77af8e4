package bunstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/rdev-hq/rdev/domain"
)

// SQLSTATE and SQLite extended result codes for unique violations.
const (
	pgUniqueViolation           = "23505"
	pgDuplicateTable            = "42P07"
	pgDuplicateObject           = "42710"
	sqliteConstraintPrimaryKey  = 1555
	sqliteConstraintUnique      = 2067
	sqliteUniqueMessageFragment = "UNIQUE constraint failed"
)

// SQLSTATEs and SQLite primary result codes of a database that cannot serve
// now but may again soon: it is down, starting, shutting down, out of
// connections or out of disk.
const (
	pgClassConnection     = "08" // connection exception
	pgClassResources      = "53" // insufficient resources: disk full, out of memory, too many connections
	pgAdminShutdown       = "57P01"
	pgCrashShutdown       = "57P02"
	pgCannotConnectNow    = "57P03"
	pgIOError             = "58030"
	sqliteBusy            = 5
	sqliteIOErr           = 10
	sqliteFull            = 13
	sqliteCantOpen        = 14
	sqlitePrimaryCodeMask = 0xff
)

// pgError is what github.com/uptrace/bun/driver/pgdriver.Error offers.
type pgError interface {
	error
	Field(byte) string
}

// sqliteError is what modernc.org/sqlite's *Error offers.
type sqliteError interface {
	error
	Code() int
}

// isUniqueViolation reports whether err is a primary-key or unique-index
// violation. It matches the drivers' errors by their methods, so this package
// needs to import neither driver.
func isUniqueViolation(err error) bool {
	if pe, ok := errors.AsType[pgError](err); ok {
		return pe.Field('C') == pgUniqueViolation
	}
	if se, ok := errors.AsType[sqliteError](err); ok {
		switch se.Code() {
		case sqliteConstraintPrimaryKey, sqliteConstraintUnique:
			return true
		}
		// Without extended result codes SQLite says only SQLITE_CONSTRAINT.
		return strings.Contains(se.Error(), sqliteUniqueMessageFragment)
	}
	return false
}

// isCreateRace reports whether err is how Postgres fails a CREATE ... IF NOT
// EXISTS that raced another session creating the same object: a duplicate
// table or object, or a unique violation in the catalog.
func isCreateRace(err error) bool {
	if pe, ok := errors.AsType[pgError](err); ok {
		switch pe.Field('C') {
		case pgDuplicateTable, pgDuplicateObject, pgUniqueViolation:
			return true
		}
	}
	return false
}

// translate returns err as callers of the store see it: EUNAVAILABLE,
// wrapping err, if the database could not be reached or cannot serve now
// (isUnavailable); err itself otherwise, and always when err already
// carries a domain code.
func translate(err error) error {
	if _, ok := errors.AsType[*domain.Error](err); ok || !isUnavailable(err) {
		return err
	}
	return unavailable(err)
}

// isUnavailable reports whether err says the database is out of reach or
// cannot serve now, such that the same request may succeed later: the
// network failed (refused, reset, unreachable, timed out, closed mid-reply),
// Postgres is starting, shutting down, out of connections or disk, or
// SQLite's file (or an output segment file) is locked past the busy
// timeout, unreadable or full. A
// cancelled or expired context is the caller's doing, not the database's.
func isUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if _, ok := errors.AsType[*net.OpError](err); ok {
		return true // dial, read or write on the database's connection; net's timeouts also match context.DeadlineExceeded
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if pe, ok := errors.AsType[pgError](err); ok {
		code := pe.Field('C')
		switch {
		case strings.HasPrefix(code, pgClassConnection), strings.HasPrefix(code, pgClassResources):
			return true
		}
		switch code {
		case pgAdminShutdown, pgCrashShutdown, pgCannotConnectNow, pgIOError:
			return true
		}
		return false
	}
	if se, ok := errors.AsType[sqliteError](err); ok {
		switch se.Code() & sqlitePrimaryCodeMask {
		case sqliteBusy, sqliteIOErr, sqliteFull, sqliteCantOpen:
			return true
		}
		return false
	}
	for _, target := range []error{
		io.EOF, io.ErrUnexpectedEOF, driver.ErrBadConn, net.ErrClosed,
		syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE,
		syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ETIMEDOUT,
		syscall.ENOSPC, syscall.EIO, // output segment files: disk full or failing
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// Connector returns c with the errors of its Connect translated as the
// store's own are (translate), for the sql.DB handed to New. Every query
// that needs a new connection then reports a database that is down, starting
// or out of connections as EUNAVAILABLE, whichever method of the store made
// it. The connections themselves are c's, untouched.
func Connector(c driver.Connector) driver.Connector {
	return connector{c}
}

type connector struct{ driver.Connector }

// Connect opens a connection with the wrapped connector.
func (c connector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, translate(err)
	}
	return conn, nil
}
