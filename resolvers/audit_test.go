package resolvers

import (
	"encoding/json"
	"testing"

	"github.com/rdev-hq/rdev/domain"
)

func TestQuery_AuditLog(t *testing.T) {
	ts := newTestServer(t) // its admin key is the first entry
	for _, name := range []string{"a", "b", "c"} {
		ts.createKey(t, name, domain.ScopeProjectsRead)
	}
	const q = `query($after: String, $f: AuditFilter) { auditLog(first: 2, after: $after, filter: $f) {
		edges { cursor node { seq action actor outcome details { key value } } }
		pageInfo { hasNextPage hasPreviousPage endCursor } } }`
	type page struct {
		AuditLog struct {
			Edges []struct {
				Cursor string
				Node   struct {
					Seq                    int
					Action, Actor, Outcome string
					Details                []struct{ Key, Value string }
				}
			}
			PageInfo struct {
				HasNextPage, HasPreviousPage bool
				EndCursor                    string
			}
		}
	}
	read := func(t *testing.T, token string, vars map[string]any) (page, gqlResponse) {
		t.Helper()
		r := ts.query(t, token, q, vars)
		var p page
		if len(r.Errors) == 0 {
			if err := json.Unmarshal(r.Data, &p); err != nil {
				t.Fatal(err)
			}
		}
		return p, r
	}

	t.Run("OK", func(t *testing.T) {
		var seqs []int
		var after any
		for range 3 {
			p, r := read(t, ts.admin, map[string]any{"after": after})
			if len(r.Errors) > 0 {
				t.Fatal(r.Errors)
			}
			for _, e := range p.AuditLog.Edges {
				seqs = append(seqs, e.Node.Seq)
				if e.Node.Action != domain.AuditKeyCreate || e.Node.Actor != domain.AuditActorCLI || e.Node.Outcome != "SUCCESS" {
					t.Errorf("entry %+v", e.Node)
				}
			}
			if !p.AuditLog.PageInfo.HasNextPage {
				break
			}
			after = p.AuditLog.PageInfo.EndCursor
		}
		if want := []int{4, 3, 2, 1}; len(seqs) != 4 || seqs[0] != want[0] || seqs[3] != want[3] {
			t.Errorf("seqs %v, want %v (newest first)", seqs, want)
		}
	})
	t.Run("Filter", func(t *testing.T) {
		p, r := read(t, ts.admin, map[string]any{"f": map[string]any{"actor": "nobody"}})
		if len(r.Errors) > 0 || len(p.AuditLog.Edges) != 0 {
			t.Errorf("actor nobody: %v %+v", r.Errors, p)
		}
	})
	t.Run("ErrForbiddenWithoutScope", func(t *testing.T) {
		reader := ts.createKey(t, "reader", domain.ScopeKeysRead)
		if _, r := read(t, reader, nil); r.code() != domain.EFORBIDDEN {
			t.Errorf("got %q %v, want FORBIDDEN", r.code(), r.Errors)
		}
	})
	t.Run("ErrInvalidCursor", func(t *testing.T) {
		for _, c := range []string{"bogus", domain.EncodeCursor("x"), domain.EncodeCursor("-1")} {
			if _, r := read(t, ts.admin, map[string]any{"after": c}); r.code() != domain.EINVALID {
				t.Errorf("after %q: got %q %v, want INVALID_INPUT", c, r.code(), r.Errors)
			}
		}
	})
	t.Run("ErrInvalidRange", func(t *testing.T) {
		f := map[string]any{"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"}
		if _, r := read(t, ts.admin, map[string]any{"f": f}); r.code() != domain.EINVALID {
			t.Errorf("got %q %v, want INVALID_INPUT", r.code(), r.Errors)
		}
	})
}
