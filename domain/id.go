package domain

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"math"
	"strings"
	"sync"
	"time"
)

// idEncoding is base32 with the "extended hex" alphabet, lower-cased. Its
// characters sort in the same order as the values they encode, so IDs that
// start with a timestamp sort by creation time.
var idEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// IDLength is the length of every ID made by NewID.
const IDLength = 16

// ids keeps NewID monotonic within this process.
var ids struct {
	sync.Mutex
	ms   uint64
	rand uint32
}

// NewID returns a 16-character ID: 48 bits of milliseconds since the Unix
// epoch followed by 32 bits that start random each millisecond and count up
// within it. IDs made later in one process sort after earlier ones — the
// queue's first-in first-out order and paging by ID rely on it.
func NewID(now time.Time) string {
	ms := uint64(now.UnixMilli())
	ids.Lock()
	if ms <= ids.ms && ids.rand < math.MaxUint32 {
		ms, ids.rand = ids.ms, ids.rand+1
	} else {
		var r [4]byte
		if _, err := rand.Read(r[:]); err != nil {
			panic(err) // crypto/rand never fails on supported platforms.
		}
		// Leave room to count up within the millisecond.
		ms, ids.rand = max(ms, ids.ms+1), binary.BigEndian.Uint32(r[:])>>1
	}
	ids.ms = ms
	var b [10]byte
	binary.BigEndian.PutUint64(b[:8], ms<<16)
	binary.BigEndian.PutUint32(b[6:], ids.rand)
	ids.Unlock()
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
