package client_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/rdev-hq/rdev/client"
	"github.com/rdev-hq/rdev/client/clienttest"
)

// agentEvent sends an agentEvents item.
func agentEvent(s *clienttest.Session, event map[string]any) {
	s.Send(map[string]any{"id": "1", "type": "next", "payload": map[string]any{"data": map[string]any{"agentEvents": event}}})
}

func message(seq, index int) map[string]any {
	return map[string]any{"__typename": "AgentMessage", "seq": seq, "index": index, "role": "ASSISTANT", "text": fmt.Sprintf("%d/%d", seq, index)}
}

func TestClient_FollowAgent(t *testing.T) {
	t.Run("ReconnectsWithoutLossOrRepeat", func(t *testing.T) {
		f := clienttest.NewServer(t)
		f.Script = func(n int, s *clienttest.Session) {
			switch n {
			case 1:
				s.ExpectAfter(0)
				for _, e := range [][2]int{{1, 0}, {2, 0}, {2, 1}} {
					agentEvent(s, message(e[0], e[1]))
				}
				s.Drop()
			case 2:
				// The chunk of the last event again: its other events
				// may not have come.
				s.ExpectAfter(1)
				for _, e := range [][2]int{{2, 0}, {2, 1}, {2, 2}, {3, 0}} {
					agentEvent(s, message(e[0], e[1]))
				}
				agentEvent(s, map[string]any{"__typename": "AgentRunEnded", "seq": 3, "index": 0, "commandStatus": "FAILED", "exitCode": 2,
					"command": map[string]any{"reason": "exit status 2", "signal": nil, "durationMs": 5}})
				s.Complete()
			default:
				t.Errorf("unexpected connection %d", n)
			}
		}
		var got []string
		end, err := newClient(t, f, client.Options{}).FollowAgent(t.Context(), "run1", 0, func(e *client.AgentEvent) error {
			got = append(got, e.Type+" "+e.Text)
			if len(e.Raw) == 0 {
				t.Errorf("event %+v without its raw JSON", e)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"AgentMessage 1/0", "AgentMessage 2/0", "AgentMessage 2/1", "AgentMessage 2/2", "AgentMessage 3/0", "AgentRunEnded "}
		if !slices.Equal(got, want) {
			t.Errorf("events %q, want %q", got, want)
		}
		if fin := end.Ended(); fin.ExitStatus() != 2 || fin.Reason != "exit status 2" || fin.LastSeq != 3 {
			t.Errorf("end %+v", fin)
		}
	})

	t.Run("AfterSeq", func(t *testing.T) {
		f := clienttest.NewServer(t)
		f.Script = func(_ int, s *clienttest.Session) {
			s.ExpectAfter(7)
			agentEvent(s, message(8, 0))
			agentEvent(s, map[string]any{"__typename": "AgentRunEnded", "seq": 8, "index": 0, "commandStatus": "SUCCEEDED", "exitCode": 0})
			s.Complete()
		}
		n := 0
		if _, err := newClient(t, f, client.Options{}).FollowAgent(t.Context(), "run1", 7, func(*client.AgentEvent) error { n++; return nil }); err != nil || n != 2 {
			t.Errorf("%d events, %v; want 2", n, err)
		}
	})
}
