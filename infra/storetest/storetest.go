// Package storetest holds the contract tests that every implementation of a
// storage port must pass. Adapter packages call them from their own tests
// with a constructor for fresh, empty, migrated stores.
package storetest

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// cmpOpts compare stored values: times by instant (time.Time.Equal), prefixes
// by value, and a nil slice equal to an empty one.
var cmpOpts = []cmp.Option{
	cmpopts.EquateComparable(netip.Prefix{}),
	cmpopts.EquateEmpty(),
}

// elsewhere is a non-UTC zone: stores must give times back in UTC whatever
// zone they were handed in.
var elsewhere = time.FixedZone("UTC+5:30", 5*3600+30*60)

// at returns a time with microsecond precision, in a non-UTC zone.
func at(t time.Time) time.Time {
	return t.Truncate(time.Microsecond).In(elsewhere)
}

func ptr[T any](v T) *T { return &v }

func randomHash() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on supported platforms.
	return hex.EncodeToString(b[:])
}

// assertUTC fails unless every time in ts is nil or in UTC.
func assertUTC(tb testing.TB, what string, ts ...*time.Time) {
	tb.Helper()
	for i, t := range ts {
		if t != nil && t.Location() != time.UTC {
			tb.Errorf("%s: time #%d is in %v, want UTC", what, i, t.Location())
		}
	}
}

// idEncoding is domain.NewID's: base32, extended hex alphabet, lower case.
var idEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// idAt returns an ID shaped like domain.NewID's for the millisecond of t.
// Tests that need IDs in a given order use it: domain.NewID keeps the IDs
// of one process in the order of its calls, whatever time it is given.
func idAt(t time.Time) string {
	var b [10]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.UnixMilli())<<16)
	_, _ = rand.Read(b[6:]) // crypto/rand never fails on supported platforms.
	return idEncoding.EncodeToString(b[:])
}
