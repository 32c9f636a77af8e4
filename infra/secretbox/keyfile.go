package secretbox

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rdev-hq/rdev/domain"
)

// KeyFile is the keyring held in a file, such as a mounted Kubernetes
// Secret, read again when the file changes, so that a running server takes
// a new ring without a restart. Each Seal and Open looks at the file once
// (a stat, following symlinks, as Kubernetes swaps its `..data` link) and
// reads it only if it changed; an Open of a value sealed under a key the
// ring lacks reads the file once more before failing. A file that becomes
// unreadable or invalid leaves the last good ring in use, which Status
// reports. It is safe for concurrent use.
type KeyFile struct {
	path  string
	log   *slog.Logger
	mu    sync.Mutex // one reader of the file at a time
	state atomic.Pointer[keyFileState]
}

// keyFileState is what the file last read gave; it is never changed, only
// replaced.
type keyFileState struct {
	ring *Ring // the last good ring
	// seen is the file as stat saw it before the last read, good or not,
	// so that a file is read once per change; nil if stat failed.
	seen fs.FileInfo
	sum  [sha256.Size]byte // of the text that gave ring
	// bad is why the file as last read was not taken, nil if it was;
	// since is when it went bad.
	bad   error
	since time.Time
}

var (
	_ domain.SecretSealer   = (*KeyFile)(nil)
	_ domain.SecretKeyNamer = (*KeyFile)(nil)
)

// OpenKeyFile reads the keyring in path (as ParseRing decodes it) and
// returns it as a KeyFile that logs to log the rings it takes later and
// the changes it refuses. It fails if the file cannot be read or holds no
// valid ring.
func OpenKeyFile(path string, log *slog.Logger) (*KeyFile, error) {
	seen, _ := os.Stat(path)
	data, err := os.ReadFile(path) //nolint:gosec // the operator names the key file.
	if err != nil {
		return nil, fmt.Errorf("secrets key file: %w", err)
	}
	ring, err := ParseRing(string(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	k := &KeyFile{path: path, log: log}
	k.state.Store(&keyFileState{ring: ring, seen: seen, sum: sha256.Sum256(data)})
	return k, nil
}

// Ring returns the current ring, having read the file again if it changed.
func (k *KeyFile) Ring() *Ring {
	st := k.state.Load()
	fi, _ := os.Stat(k.path)
	if sameFile(st.seen, fi) {
		return st.ring
	}
	return k.reload(st, false).ring
}

// sameFile reports whether b is a stat of the file a was: both failed, or
// the same inode with the same size and modification time.
func sameFile(a, b fs.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// reload reads the file unless another caller replaced seen meanwhile
// (then it returns that caller's state): if it changed or force is set.
func (k *KeyFile) reload(seen *keyFileState, force bool) *keyFileState {
	k.mu.Lock()
	defer k.mu.Unlock()
	st := k.state.Load()
	if st != seen {
		return st
	}
	// Stat before reading: a change after the stat is seen next time.
	fi, _ := os.Stat(k.path)
	if !force && sameFile(st.seen, fi) {
		return st
	}
	next := k.read(st)
	next.seen = fi
	k.state.Store(next)
	return next
}

// read reads the file and returns the state it leads to from st: its ring
// if it is valid, else st's ring with the reason it is not, logged once.
func (k *KeyFile) read(st *keyFileState) *keyFileState {
	next := *st
	data, err := os.ReadFile(k.path) //nolint:gosec // the operator names the key file.
	if err == nil && sha256.Sum256(data) == st.sum {
		if st.bad != nil {
			k.log.Info("the secrets key file is valid again", "sealing_key_id", st.ring.SealingKeyID(), "key_ids", st.ring.KeyIDs())
		}
		next.bad = nil // back as it was, or only touched
		return &next
	}
	var ring *Ring
	if err == nil {
		ring, err = ParseRing(string(data))
	}
	if err != nil {
		if st.bad == nil {
			next.since = time.Now()
		}
		if st.bad == nil || st.bad.Error() != err.Error() {
			k.log.Error("the secrets key file changed and is not a valid keyring: keeping the keys read before",
				"path", k.path, "err", err, "sealing_key_id", st.ring.SealingKeyID(), "keys", len(st.ring.boxes))
		}
		next.bad = err
		return &next
	}
	next.ring, next.sum, next.bad = ring, sha256.Sum256(data), nil
	k.log.Info("read the changed secrets key file", "sealing_key_id", ring.SealingKeyID(), "key_ids", ring.KeyIDs())
	return &next
}

// Seal seals plaintext under the first key of the current ring.
func (k *KeyFile) Seal(plaintext, ad []byte) ([]byte, error) {
	return k.Ring().Seal(plaintext, ad)
}

// Open opens sealed under the current ring, reading the file once more
// if the ring lacks the key that sealed it.
func (k *KeyFile) Open(sealed, ad []byte) ([]byte, error) {
	ring := k.Ring()
	v, err := ring.Open(sealed, ad)
	if !errors.Is(err, ErrUnknownKey) {
		return v, err
	}
	st := k.state.Load()
	if st.ring == ring {
		st = k.reload(st, true)
	}
	if st.ring == ring {
		return nil, err
	}
	return st.ring.Open(sealed, ad)
}

// SealingKeyID returns the ID of the key that seals now.
func (k *KeyFile) SealingKeyID() string { return k.Ring().SealingKeyID() }

// SealedKeyID returns the ID of the key that sealed sealed.
func (k *KeyFile) SealedKeyID(sealed []byte) string { return SealedKeyID(sealed) }

// KeyStatus is what a keyring holds, for health and metrics: key IDs
// only, never a key, and never the file's path.
type KeyStatus struct {
	// KeyIDs are the IDs of the keys held, the sealing one first.
	KeyIDs []string
	// Stale says why the key file, changed since its ring was read, was
	// not taken; empty if it was.
	Stale string
	// StaleSince is when the file stopped being taken.
	StaleSince time.Time
}

// Status returns the keys held now, having read the file again if it
// changed.
func (k *KeyFile) Status() KeyStatus {
	ring := k.Ring()
	st := k.state.Load()
	s := KeyStatus{KeyIDs: ring.KeyIDs()}
	if st.bad != nil {
		s.Stale, s.StaleSince = withoutPath(st.bad, k.path), st.since
	}
	return s
}

// Status returns the ring's keys.
func (r *Ring) Status() KeyStatus { return KeyStatus{KeyIDs: r.KeyIDs()} }

// withoutPath returns err's text with the file's path left out: health
// details are shown to every key holder.
func withoutPath(err error, path string) string {
	msg := err.Error()
	var pe *fs.PathError
	if errors.As(err, &pe) {
		msg = pe.Op + ": " + pe.Err.Error()
	}
	return strings.ReplaceAll(msg, path, "the key file")
}
