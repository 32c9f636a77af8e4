package secretbox_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rdev-hq/rdev/infra/secretbox"
)

// logBuffer is a log safe for concurrent writes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// writeFile replaces path with text through a rename, as editors and
// rdev itself do.
func writeFile(tb testing.TB, path string, keys ...string) {
	tb.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(keys, "\n")+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		tb.Fatal(err)
	}
}

func openKeyFile(tb testing.TB, path string) (*secretbox.KeyFile, *logBuffer) {
	tb.Helper()
	log := new(logBuffer)
	k, err := secretbox.OpenKeyFile(path, slog.New(slog.NewTextHandler(log, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	return k, log
}

// A changed key file is taken at the next Seal: it seals under the new
// first key and opens under every one.
func TestKeyFile_Reload(t *testing.T) {
	a, b := secretbox.NewKey(), secretbox.NewKey()
	path := filepath.Join(t.TempDir(), "secrets.key")
	writeFile(t, path, a)
	k, log := openKeyFile(t, path)
	ad := []byte("ad")
	underA, err := k.Seal([]byte("a"), ad)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, b, a)
	underB, err := k.Seal([]byte("b"), ad)
	if err != nil {
		t.Fatal(err)
	}
	if got := secretbox.SealedKeyID(underB); got != keyID(t, b) || k.SealingKeyID() != keyID(t, b) {
		t.Fatalf("after the change, sealed under %s, want b's %s", got, keyID(t, b))
	}
	for _, sealed := range [][]byte{underA, underB} {
		if _, err := k.Open(sealed, ad); err != nil {
			t.Errorf("Open: %v", err)
		}
	}
	if st := k.Status(); !equal(st.KeyIDs, keyID(t, b), keyID(t, a)) || st.Stale != "" {
		t.Errorf("Status = %+v, want b then a, not stale", st)
	}
	if !strings.Contains(log.String(), "read the changed secrets key file") {
		t.Errorf("the change was not logged: %s", log)
	}
	if strings.Contains(log.String(), a) || strings.Contains(log.String(), b) {
		t.Errorf("the log shows a key: %s", log)
	}
}

// kubeSecret lays a key out as the kubelet mounts a Secret: key is a
// symlink to ..data/key, ..data a symlink to a timestamped directory; an
// update writes a new directory and swaps ..data by a rename.
type kubeSecret struct {
	dir string
	n   int
}

func (s *kubeSecret) path() string { return filepath.Join(s.dir, "key") }

func (s *kubeSecret) write(tb testing.TB, keys ...string) {
	tb.Helper()
	s.n++
	ts := filepath.Join(s.dir, fmt.Sprintf("..2026_12_07_%04d", s.n))
	if err := os.Mkdir(ts, 0o700); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ts, "key"), []byte(strings.Join(keys, "\n")+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	old, _ := os.Readlink(filepath.Join(s.dir, "..data"))
	tmp := filepath.Join(s.dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, "..data")); err != nil {
		tb.Fatal(err)
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(s.dir, old)); err != nil {
			tb.Fatal(err)
		}
		return
	}
	if err := os.Symlink(filepath.Join("..data", "key"), s.path()); err != nil {
		tb.Fatal(err)
	}
}

// A Kubernetes Secret's update, a swap of the ..data symlink, is taken.
func TestKeyFile_SymlinkSwap(t *testing.T) {
	a, b := secretbox.NewKey(), secretbox.NewKey()
	s := &kubeSecret{dir: t.TempDir()}
	s.write(t, a)
	k, _ := openKeyFile(t, s.path())
	if k.SealingKeyID() != keyID(t, a) {
		t.Fatal("not sealing under a")
	}
	s.write(t, b, a)
	if got := k.SealingKeyID(); got != keyID(t, b) {
		t.Errorf("after the swap, sealing under %s, want b's %s", got, keyID(t, b))
	}
	s.write(t, b)
	if st := k.Status(); !equal(st.KeyIDs, keyID(t, b)) {
		t.Errorf("after the old key's removal, keys %q, want b only", st.KeyIDs)
	}
}

// A value sealed under a key the ring lacks makes Open read the file
// again, even when a stat shows no change.
func TestKeyFile_UnknownKeyReadsAgain(t *testing.T) {
	a, b := secretbox.NewKey(), secretbox.NewKey()
	path := filepath.Join(t.TempDir(), "secrets.key")
	writeFile(t, path, a)
	k, _ := openKeyFile(t, path)
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// Rewritten in place, same size, its time set back: no stat tells.
	if err := os.WriteFile(path, []byte(b+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, before.ModTime(), before.ModTime()); err != nil {
		t.Fatal(err)
	}
	if k.SealingKeyID() != keyID(t, a) {
		t.Fatal("the file was read again though no stat told: the test shows nothing")
	}
	underB, err := ringOf(t, b).Seal([]byte("v"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := k.Open(underB, nil); err != nil || string(got) != "v" {
		t.Errorf("Open of a value under the file's new key = %q, %v", got, err)
	}
	underC, err := ringOf(t, secretbox.NewKey()).Seal([]byte("v"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Open(underC, nil); !errors.Is(err, secretbox.ErrUnknownKey) {
		t.Errorf("Open under a key the file lacks: %v, want ErrUnknownKey", err)
	}
}

// A key file that becomes invalid or goes away leaves the last good ring
// in use, says so once in the log and in Status (without the path), and
// is taken again once valid.
func TestKeyFile_BadFileKeepsRing(t *testing.T) {
	a, b := secretbox.NewKey(), secretbox.NewKey()
	dir := t.TempDir()
	path := filepath.Join(dir, "secrets.key")
	writeFile(t, path, b, a)
	k, log := openKeyFile(t, path)
	underA, err := ringOf(t, a).Seal([]byte("v"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		change func()
		want   string
	}{
		{"Invalid", func() { writeFile(t, path, "not a key") }, "line 1"},
		{"Empty", func() { writeFile(t, path) }, "no key"},
		{"Removed", func() { _ = os.Remove(path) }, "no such file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.change()
			for range 3 {
				if got := k.SealingKeyID(); got != keyID(t, b) {
					t.Fatalf("sealing under %s, want the last good ring's b", got)
				}
			}
			if v, err := k.Open(underA, nil); err != nil || string(v) != "v" {
				t.Errorf("Open under a = %q, %v", v, err)
			}
			st := k.Status()
			if !strings.Contains(st.Stale, tt.want) || strings.Contains(st.Stale, dir) || st.StaleSince.IsZero() {
				t.Errorf("Status = %+v, want stale saying %q, without the path", st, tt.want)
			}
			if n := strings.Count(log.String(), tt.want); n != 1 {
				t.Errorf("logged %d times, want once: %s", n, log)
			}
		})
	}
	writeFile(t, path, a)
	if st := k.Status(); st.Stale != "" || !equal(st.KeyIDs, keyID(t, a)) {
		t.Errorf("the file valid again: %+v, want a alone, not stale", st)
	}
}

// Seal, Open and Status run concurrently with changes of the file (under
// -race): every value opens, whatever ring each call saw.
func TestKeyFile_Concurrent(t *testing.T) {
	a, b := secretbox.NewKey(), secretbox.NewKey()
	s := &kubeSecret{dir: t.TempDir()}
	s.write(t, a, b)
	k, _ := openKeyFile(t, s.path())
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				sealed, err := k.Seal([]byte("v"), []byte("ad"))
				if err == nil {
					_, err = k.Open(sealed, []byte("ad"))
				}
				if err == nil {
					_ = k.Status()
					continue
				}
				errs <- err
				return
			}
		})
	}
	for i := range 200 {
		switch i % 3 {
		case 0:
			s.write(t, b, a)
		case 1:
			s.write(t, a, b)
		default:
			s.write(t, "garbage")
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
