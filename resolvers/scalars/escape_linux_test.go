package scalars

import (
	"bytes"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

// guarded returns n bytes that end where a page that cannot be read or
// written begins, so that a test faults on any access past them.
func guarded(t *testing.T, n int) []byte {
	page := syscall.Getpagesize()
	size := (n+page-1)/page*page + page
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Munmap(mem) })
	if err := syscall.Mprotect(mem[size-page:], syscall.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	return mem[size-page-n : size-page : size-page]
}

// TestEscapeGuarded checks that escape reads nothing past s and writes
// nothing past dst, with each of them just before a guard page.
func TestEscapeGuarded(t *testing.T) {
	for _, unit := range []string{"x", "\n", "ab\"", "\x00", "é", "中\t", "😀", "\xff", "12345\n"} {
		for n := range 300 {
			src := guarded(t, n)
			copy(src, strings.Repeat(unit, n))
			s := unsafe.String(unsafe.SliceData(src), n)
			want := escapeWant(t, s)
			for _, room := range []int{maxStep + 1, 100, asmRoom - 1, asmRoom, asmRoom + 1, 300, len(want) + maxStep + 1} {
				dst := guarded(t, room)
				var got []byte
				for rest := s; rest != ""; {
					r, w := escape(dst, rest)
					if r <= 0 {
						t.Fatalf("escape(%q) into %d bytes read nothing", rest, room)
					}
					got = append(got, dst[:w]...)
					rest = rest[r:]
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("escape(%q) into %d bytes at a time = %q, want %q", s, room, got, want)
				}
			}
		}
	}
}
