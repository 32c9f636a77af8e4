package bunstore

import (
	"errors"
	"strings"
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
