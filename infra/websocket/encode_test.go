package websocket

import (
	"encoding/json"
	"testing"
)

// message has the shape of gqlgen's transport messages.
type message struct {
	Payload json.RawMessage `json:"payload,omitempty"`
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
}

func TestMarshal(t *testing.T) {
	tests := []struct {
		name string
		v    any
	}{
		{"WithPayload", message{Payload: json.RawMessage(`{"data":{"x":"a\"b"}}`), ID: "1", Type: "next"}},
		{"Pointer", &message{Payload: json.RawMessage(`[1,2]`), Type: "next"}},
		{"NoPayload", message{ID: "7", Type: "complete"}},
		{"NoOtherFields", struct {
			Payload json.RawMessage `json:"payload,omitempty"`
		}{Payload: json.RawMessage(`{"a":1}`)}},
		{"OtherValue", map[string]any{"type": "ping"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := marshal(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := json.Marshal(tt.v)
			var g, w any
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatalf("invalid JSON %s: %v", got, err)
			}
			_ = json.Unmarshal(want, &w)
			gb, _ := json.Marshal(g)
			wb, _ := json.Marshal(w)
			if string(gb) != string(wb) {
				t.Errorf("got %s, want %s", got, want)
			}
		})
	}
}

func BenchmarkMarshal(b *testing.B) {
	payload, _ := json.Marshal(map[string]any{"data": map[string]any{"commandOutput": map[string]any{"data": string(make([]byte, 64<<10))}}})
	m := message{Payload: payload, ID: "1", Type: "next"}
	b.Run("baseline=encoding/json", func(b *testing.B) {
		b.SetBytes(int64(len(payload)))
		for b.Loop() {
			_, _ = json.Marshal(m)
		}
	})
	b.Run("splice", func(b *testing.B) {
		b.SetBytes(int64(len(payload)))
		for b.Loop() {
			_, _ = marshal(m)
		}
	})
}
