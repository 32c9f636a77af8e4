package domain

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestErrorCode(t *testing.T) {
	for _, tt := range []struct {
		name    string
		err     error
		code    string
		message string
	}{
		{"Nil", nil, "", ""},
		{"Error", Errorf(ENOTFOUND, "project %q not found", "x"), ENOTFOUND, `project "x" not found`},
		{"Wrapped", fmt.Errorf("loading: %w", Errorf(ECONFLICT, "taken")), ECONFLICT, "taken"},
		{"WrappedTwice", fmt.Errorf("a: %w", fmt.Errorf("b: %w", Errorf(EFORBIDDEN, "no"))), EFORBIDDEN, "no"},
		{"Joined", errors.Join(io.EOF, Errorf(EINVALID, "bad")), EINVALID, "bad"},
		{"Plain", errors.New("pq: connection refused"), EINTERNAL, "internal error"},
		{"PlainWrapped", fmt.Errorf("query: %w", io.ErrUnexpectedEOF), EINTERNAL, "internal error"},
		{"NotWrappedWithV", fmt.Errorf("query: %v", Errorf(ENOTFOUND, "gone")), EINTERNAL, "internal error"},
		{"EmptyMessage", &Error{Code: EUNAVAILABLE}, EUNAVAILABLE, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := ErrorCode(tt.err); got != tt.code {
				t.Errorf("ErrorCode(%v) = %q, want %q", tt.err, got, tt.code)
			}
			if got := ErrorMessage(tt.err); got != tt.message {
				t.Errorf("ErrorMessage(%v) = %q, want %q", tt.err, got, tt.message)
			}
		})
	}
}

func TestError_Error(t *testing.T) {
	err := Errorf(EINVALID, "first: must be between 0 and %d, got %d", 100, 101)
	if got, want := err.Error(), "rdev error: code=INVALID_INPUT message=first: must be between 0 and 100, got 101"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestErrorCodes(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range ErrorCodes {
		if c == "" || seen[c] {
			t.Errorf("ErrorCodes has empty or repeated code %q", c)
		}
		seen[c] = true
	}
	for _, c := range []string{EUNAUTHENTICATED, EFORBIDDEN, ENOTFOUND, EINVALID, ECONFLICT, ERATELIMITED, EUNAVAILABLE, EINTERNAL} {
		if !seen[c] {
			t.Errorf("ErrorCodes lacks %q", c)
		}
	}
}
