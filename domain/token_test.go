package domain

import (
	"strings"
	"testing"
)

const idAlphabet = "0123456789abcdefghijklmnopqrstuv"

func TestTokenLength(t *testing.T) {
	if TokenLength != 55 {
		t.Fatalf("TokenLength = %d, want 55 (5 prefix + 16 id + 1 '_' + 26 secret + 7 checksum)", TokenLength)
	}
	for range 100 {
		token, _ := newToken(NewID(newClock().Now()))
		if len(token) != TokenLength {
			t.Fatalf("len(%q) = %d, want %d", token, len(token), TokenLength)
		}
	}
}

func TestParseToken(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		for range 1000 {
			id := NewID(newClock().Now())
			token, secret := newToken(id)
			gotID, gotSecret, err := ParseToken(token)
			if err != nil {
				t.Fatalf("ParseToken(%q): %v", token, err)
			}
			if gotID != id || gotSecret != secret {
				t.Fatalf("ParseToken(%q) = %q, %q; want %q, %q", token, gotID, gotSecret, id, secret)
			}
			if len(secret) != secretLength || !inIDAlphabet(secret) {
				t.Fatalf("secret %q: want %d characters of %q", secret, secretLength, idAlphabet)
			}
			if !strings.HasPrefix(token, "rdev_"+id+"_"+secret) {
				t.Fatalf("token %q does not start with rdev_<id>_<secret>", token)
			}
		}
	})

	t.Run("OKGolden", func(t *testing.T) {
		// Tokens already handed out must keep parsing: this pins the layout
		// and the checksum algorithm (CRC-32 IEEE, big-endian, base32hex).
		const token = "rdev_0123456789abcdef_ghijklmnopqrstuv01234567895k71k6o"
		id, secret, err := ParseToken(token)
		if err != nil || id != "0123456789abcdef" || secret != "ghijklmnopqrstuv0123456789" {
			t.Fatalf("ParseToken(%q) = %q, %q, %v", token, id, secret, err)
		}
		if fixedToken() != token {
			t.Errorf("fixedToken() = %q, want %q", fixedToken(), token)
		}
	})

	t.Run("SecretsDiffer", func(t *testing.T) {
		id := NewID(newClock().Now())
		seen := map[string]bool{}
		for range 1000 {
			_, secret := newToken(id)
			if seen[secret] {
				t.Fatalf("secret %q repeated", secret)
			}
			seen[secret] = true
		}
	})

	valid := fixedToken()
	shape := "malformed API key: expected rdev_<id>_<secret> of 55 characters"
	chars := "malformed API key: unexpected characters"
	checksum := "malformed API key: checksum mismatch (is it mistyped?)"

	for _, tt := range []struct {
		name    string
		token   string
		message string
	}{
		{"ErrEmpty", "", shape},
		{"ErrWrongPrefix", "sk__" + valid[4:], shape},
		{"ErrPrefixOnly", "rdev_", shape},
		{"ErrUppercasePrefix", "RDEV_" + valid[5:], shape},
		{"ErrUppercase", strings.ToUpper(valid[:5]) + strings.ToUpper(valid[5:]), shape},
		{"ErrUppercaseBody", valid[:5] + strings.ToUpper(valid[5:]), chars},
		{"ErrMissingUnderscore", valid[:21] + valid[22:] + "0", shape},
		{"ErrOneShort", valid[:len(valid)-1], shape},
		{"ErrOneLong", valid + "0", shape},
		{"ErrDoubled", valid + valid, shape},
		{"ErrSpaces", " " + valid[:len(valid)-1], shape},
		{"ErrTrailingNewline", valid[:len(valid)-1] + "\n", checksum},
		{"ErrBearerPrefix", "Bearer " + valid, shape},
		{"ErrSecretOutsideAlphabet", valid[:22] + "w" + valid[23:], chars},
		{"ErrIDOutsideAlphabet", valid[:5] + "z" + valid[6:], chars},
		{"ErrNonASCII", valid[:22] + "é" + valid[24:], chars},
		{"ErrSwappedChecksum", valid[:48] + reverse(valid[48:]), checksum},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id, secret, err := ParseToken(tt.token)
			wantCode(t, err, EUNAUTHENTICATED)
			if got := ErrorMessage(err); got != tt.message {
				t.Errorf("message = %q, want %q", got, tt.message)
			}
			if id != "" || secret != "" {
				t.Errorf("ParseToken returned id %q, secret %q with an error", id, secret)
			}
		})
	}
}

// fixedToken returns a valid token whose body is fixed, so table cases that
// edit it are deterministic.
func fixedToken() string {
	body := "rdev_0123456789abcdef_ghijklmnopqrstuv0123456789"
	return body + tokenChecksum(body)
}

func reverse(s string) string {
	b := []byte(s)
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return string(b)
}

// TestParseToken_SingleCharacterChanges checks that the checksum (or the
// shape check) catches every possible single-byte typo in a valid token.
func TestParseToken_SingleCharacterChanges(t *testing.T) {
	for range 5 {
		valid, _ := newToken(NewID(newClock().Now()))
		for i := range len(valid) {
			for c := range 256 {
				if byte(c) == valid[i] {
					continue
				}
				b := []byte(valid)
				b[i] = byte(c)
				_, _, err := ParseToken(string(b))
				if ErrorCode(err) != EUNAUTHENTICATED {
					t.Fatalf("ParseToken(%q) (byte %d changed to %q): err = %v, want %s", b, i, byte(c), err, EUNAUTHENTICATED)
				}
				if !strings.HasPrefix(ErrorMessage(err), "malformed API key: ") {
					t.Fatalf("ParseToken(%q): message %q does not say the key is malformed", b, ErrorMessage(err))
				}
			}
		}
	}
}

// TestParseToken_AdjacentTranspositions checks the other common typo.
func TestParseToken_AdjacentTranspositions(t *testing.T) {
	valid, _ := newToken(NewID(newClock().Now()))
	for i := range len(valid) - 1 {
		if valid[i] == valid[i+1] {
			continue
		}
		b := []byte(valid)
		b[i], b[i+1] = b[i+1], b[i]
		if _, _, err := ParseToken(string(b)); ErrorCode(err) != EUNAUTHENTICATED {
			t.Fatalf("ParseToken(%q) (swapped %d and %d): err = %v, want %s", b, i, i+1, err, EUNAUTHENTICATED)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	valid, _ := newToken(NewID(newClock().Now()))
	for _, s := range []string{
		"", "rdev_", valid, valid[:len(valid)-1], valid + "0",
		"rdev_0000000000000000_00000000000000000000000000" + tokenChecksum("rdev_0000000000000000_00000000000000000000000000"),
		"rdev_vvvvvvvvvvvvvvvv_vvvvvvvvvvvvvvvvvvvvvvvvvv0000000",
		strings.Repeat("_", TokenLength), strings.ToUpper(valid),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		id, secret, err := ParseToken(token)
		if err != nil {
			if ErrorCode(err) != EUNAUTHENTICATED {
				t.Fatalf("ParseToken(%q): code %q, want %s", token, ErrorCode(err), EUNAUTHENTICATED)
			}
			if id != "" || secret != "" {
				t.Fatalf("ParseToken(%q) returned %q, %q with an error", token, id, secret)
			}
			return
		}
		if !validID(id) || len(secret) != secretLength || !inIDAlphabet(secret) {
			t.Fatalf("ParseToken(%q) accepted id %q, secret %q", token, id, secret)
		}
		body := tokenPrefix + id + "_" + secret
		if again := body + tokenChecksum(body); again != token {
			t.Fatalf("ParseToken(%q) = %q, %q, which re-serialises to %q", token, id, secret, again)
		}
	})
}
