package websocket

import (
	"encoding/binary"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClosePayload(t *testing.T) {
	for _, tt := range []struct {
		name       string
		code       int
		reason     string
		wantEmpty  bool
		wantReason string
	}{
		{"Normal", 1000, "bye", false, "bye"},
		{"Application", 4403, "forbidden", false, "forbidden"},
		{"TooBig", 1009, "", false, ""},
		{"NoStatus", 1005, "x", true, ""},
		{"Abnormal", 1006, "x", true, ""},
		{"TLS", 1015, "x", true, ""},
		{"Reserved", 1004, "x", true, ""},
		{"BelowRange", 999, "x", true, ""},
		{"AboveRange", 5000, "x", true, ""},
		{"LongASCII", 1000, strings.Repeat("a", 200), false, strings.Repeat("a", 123)},
		// 61 two-byte runes fit in 122 bytes; the 62nd would straddle 123.
		{"LongUTF8", 1000, strings.Repeat("é", 100), false, strings.Repeat("é", 61)},
		{"InvalidUTF8", 1000, "a\xffb", false, "a\uFFFDb"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := closePayload(tt.code, tt.reason)
			if tt.wantEmpty {
				if len(p) != 0 {
					t.Errorf("payload %q, want empty", p)
				}
				return
			}
			if len(p) > 125 {
				t.Errorf("payload is %d bytes, more than a control frame holds", len(p))
			}
			if code := int(binary.BigEndian.Uint16(p)); code != tt.code {
				t.Errorf("code %d, want %d", code, tt.code)
			}
			if reason := string(p[2:]); reason != tt.wantReason || !utf8.ValidString(reason) {
				t.Errorf("reason %q, want %q", reason, tt.wantReason)
			}
		})
	}
}
