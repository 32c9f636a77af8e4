package domain

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"strings"
	"time"
)

// idEncoding is base32 with the "extended hex" alphabet, lower-cased. Its
// characters sort in the same order as the values they encode, so IDs that
// start with a timestamp sort by creation time.
var idEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// IDLength is the length of every ID made by NewID.
const IDLength = 16

// NewID returns a 16-character ID: 48 bits of milliseconds since the Unix
// epoch followed by 32 random bits. IDs made later sort after earlier ones, so
// storage can page by ID alone.
func NewID(now time.Time) string {
	var b [10]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	if _, err := rand.Read(b[6:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms.
	}
	return idEncoding.EncodeToString(b[:])
}

// validID reports whether s has the shape of an ID made by NewID.
func validID(s string) bool {
	return len(s) == IDLength && inIDAlphabet(s)
}

// inIDAlphabet reports whether every character of s is one NewID uses.
func inIDAlphabet(s string) bool {
	return strings.Trim(s, "0123456789abcdefghijklmnopqrstuv") == ""
}
