package bunstore

import (
	"errors"
	"fmt"
	"testing"

	"github.com/rdev-hq/rdev/domain"
)

// fakePGError has the method set of pgdriver.Error (a value type).
type fakePGError map[byte]string

func (e fakePGError) Field(k byte) string { return e[k] }
func (e fakePGError) Error() string       { return "pg: " + e['C'] }

// fakeSQLiteError has the method set of modernc.org/sqlite's *Error.
type fakeSQLiteError struct {
	code int
	msg  string
}

func (e *fakeSQLiteError) Code() int     { return e.code }
func (e *fakeSQLiteError) Error() string { return e.msg }

func TestIsUniqueViolation(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"PGUnique", fakePGError{'C': "23505"}, true},
		{"PGUniqueWrapped", fmt.Errorf("insert: %w", fakePGError{'C': "23505"}), true},
		{"PGForeignKey", fakePGError{'C': "23503"}, false},
		{"PGNotNull", fakePGError{'C': "23502"}, false},
		{"SQLitePrimaryKey", &fakeSQLiteError{1555, "UNIQUE constraint failed: t.id"}, true},
		{"SQLiteUnique", fmt.Errorf("x: %w", &fakeSQLiteError{2067, "UNIQUE constraint failed: t.c"}), true},
		{"SQLiteForeignKey", &fakeSQLiteError{787, "FOREIGN KEY constraint failed"}, false},
		{"SQLitePlainConstraint", &fakeSQLiteError{19, "constraint failed: UNIQUE constraint failed: t.id"}, true},
		{"SQLiteBusy", &fakeSQLiteError{5, "database is locked"}, false},
		{"Other", errors.New("duplicate key value violates unique constraint"), false},
		{"Nil", nil, false},
	}
	for _, tt := range tests {
		if got := isUniqueViolation(tt.err); got != tt.want {
			t.Errorf("%s: isUniqueViolation(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

func TestUnavailable(t *testing.T) {
	cause := errors.New("dial tcp: connection refused")
	err := unavailable(cause)
	if code := domain.ErrorCode(err); code != domain.EUNAVAILABLE {
		t.Errorf("code = %q, want %q", code, domain.EUNAVAILABLE)
	}
	if !errors.Is(err, cause) {
		t.Errorf("%v does not wrap its cause", err)
	}
	if msg := domain.ErrorMessage(err); msg != "the database is unavailable" {
		t.Errorf("client message = %q, which should not reveal the cause", msg)
	}
}
