//go:build !amd64 || purego

package scalars

// escape writes the JSON string contents of s into dst and returns how much
// of s it read and of dst it wrote; it stops early only when dst is nearly
// full. Here it is escapeGeneric: there is a faster loop only on amd64, and
// the purego tag leaves it out.
func escape(dst []byte, s string) (read, written int) { return escapeGeneric(dst, s) }
