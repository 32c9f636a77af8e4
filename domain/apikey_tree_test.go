package domain

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// keyTree is an operator-made parent, the child it made, the grandchild the
// child made, and an operator-made key outside the tree, with their tokens.
type keyTree struct {
	parent, child, grandchild, other             *APIKey
	parentToken, childToken, grandToken, otherTk string
}

func newKeyTree(t *testing.T, s *APIKeyService) keyTree {
	t.Helper()
	var kt keyTree
	writer := []string{"keys:write", "keys:read", "projects:read"}
	kt.parent, kt.parentToken = mustCreateKey(t, s, CreateAPIKey{Name: "parent", Scopes: writer})
	kt.child, kt.childToken = mustCreateChild(t, s, kt.parent, CreateAPIKey{Name: "child", Scopes: writer})
	kt.grandchild, kt.grandToken = mustCreateChild(t, s, kt.child, CreateAPIKey{Name: "grandchild", Scopes: []string{"projects:read"}})
	kt.other, kt.otherTk = mustCreateKey(t, s, CreateAPIKey{Name: "other", Scopes: writer})
	return kt
}

func TestAPIKeyService_RevokeCascade(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		s, repo, clk := newTestKeyService()
		kt := newKeyTree(t, s)
		clk.Advance(time.Minute)
		before := len(repo.audit.all())
		root, descendants, err := s.Revoke(operatorContext(t), kt.parent.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := clk.Now().UTC().Truncate(time.Microsecond)
		if root.ID != kt.parent.ID || root.RevokedAt == nil || !root.RevokedAt.Equal(want) {
			t.Errorf("Revoke = %+v, want the parent revoked at %v", root, want)
		}
		if got := keyIDs(descendants); !slices.Equal(got, []string{kt.child.ID, kt.grandchild.ID}) {
			t.Errorf("descendants revoked = %v, want child %s then grandchild %s", got, kt.child.ID, kt.grandchild.ID)
		}
		for _, token := range []string{kt.parentToken, kt.childToken, kt.grandToken} {
			_, err := s.Authenticate(t.Context(), token, clientAddr)
			wantCode(t, err, EUNAUTHENTICATED)
		}
		for _, k := range []*APIKey{kt.child, kt.grandchild} {
			if st := repo.stored(k.ID); st.RevokedAt == nil || !st.RevokedAt.Equal(want) {
				t.Errorf("%s stored with RevokedAt %v, want %v", k.Name, st.RevokedAt, want)
			}
		}
		mustAuthenticate(t, s, kt.otherTk)

		var got []string
		for _, e := range repo.audit.all()[before:] {
			got = append(got, e.Action+" "+e.Target+" "+string(e.Outcome)+" "+e.Actor+" "+detailString(e.Details))
		}
		wantEntries := []string{
			"key.revoke " + kt.parent.ID + " success cli revokedDescendants=2",
			"key.revoke " + kt.child.ID + " success cli cascadeFrom=" + kt.parent.ID + " createdBy=" + kt.parent.ID,
			"key.revoke " + kt.grandchild.ID + " success cli cascadeFrom=" + kt.parent.ID + " createdBy=" + kt.child.ID,
		}
		if !slices.Equal(got, wantEntries) {
			t.Errorf("audit entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantEntries, "\n"))
		}
	})

	t.Run("OKMiddleKeepsAncestors", func(t *testing.T) {
		s, repo, _ := newTestKeyService()
		kt := newKeyTree(t, s)
		_, descendants, err := s.Revoke(keyContext(t, kt.child), kt.child.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got := keyIDs(descendants); !slices.Equal(got, []string{kt.grandchild.ID}) {
			t.Errorf("descendants revoked = %v, want the grandchild", got)
		}
		if repo.stored(kt.parent.ID).RevokedAt != nil {
			t.Error("revoking the child revoked its parent")
		}
		mustAuthenticate(t, s, kt.parentToken)
	})

	t.Run("OKAgainReachesChildrenLeftActive", func(t *testing.T) {
		// Keys revoked before revocation cascaded left their children
		// active; revoking such a key again revokes them.
		s, repo, clk := newTestKeyService()
		kt := newKeyTree(t, s)
		earlier := clk.Now().UTC().Truncate(time.Microsecond)
		repo.set(func(r *keyRepo) { r.keys[kt.parent.ID].RevokedAt = &earlier })
		clk.Advance(time.Hour)
		root, descendants, err := s.Revoke(operatorContext(t), kt.parent.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !root.RevokedAt.Equal(earlier) {
			t.Errorf("the parent's RevokedAt moved from %v to %v", earlier, root.RevokedAt)
		}
		if len(descendants) != 2 {
			t.Errorf("descendants revoked = %v, want the child and the grandchild", keyIDs(descendants))
		}
		_, err = s.Authenticate(t.Context(), kt.grandToken, clientAddr)
		wantCode(t, err, EUNAUTHENTICATED)
	})

	t.Run("OKRevokedDescendantKeepsItsTime", func(t *testing.T) {
		s, repo, clk := newTestKeyService()
		kt := newKeyTree(t, s)
		first, _, err := s.Revoke(keyContext(t, kt.grandchild), kt.grandchild.ID)
		wantCode(t, err, EFORBIDDEN) // the grandchild lacks keys:write
		if first != nil {
			t.Fatalf("Revoke = %+v with an error", first)
		}
		if _, _, err := s.Revoke(keyContext(t, kt.child), kt.grandchild.ID); err != nil {
			t.Fatal(err)
		}
		grandRevoked := *repo.stored(kt.grandchild.ID).RevokedAt
		clk.Advance(time.Hour)
		_, descendants, err := s.Revoke(operatorContext(t), kt.parent.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got := keyIDs(descendants); !slices.Equal(got, []string{kt.child.ID}) {
			t.Errorf("descendants revoked = %v, want only the child", got)
		}
		if got := repo.stored(kt.grandchild.ID).RevokedAt; !got.Equal(grandRevoked) {
			t.Errorf("the grandchild's RevokedAt moved from %v to %v", grandRevoked, got)
		}
	})

	t.Run("ErrUnauthenticatedCreatorRevokedMeanwhile", func(t *testing.T) {
		// The creator was revoked after its request was authenticated:
		// what it creates now would escape the cascade.
		s, repo, _ := newTestKeyService()
		kt := newKeyTree(t, s)
		stale := *kt.child
		if _, _, err := s.Revoke(operatorContext(t), kt.parent.ID); err != nil {
			t.Fatal(err)
		}
		before := repo.len()
		_, _, err := s.Create(keyContext(t, &stale), CreateAPIKey{Name: "late", Scopes: []string{"projects:read"}})
		wantCode(t, err, EUNAUTHENTICATED)
		if repo.len() != before {
			t.Error("a key was created by a revoked key")
		}
	})
}

func TestAPIKeyService_ManageOthers(t *testing.T) {
	type action struct {
		name string
		do   func(s *APIKeyService, caller *APIKey, id string) error
	}
	actions := []action{
		{"Rotate", func(s *APIKeyService, caller *APIKey, id string) error {
			_, _, err := s.Rotate(keyContext(t, caller), id, time.Hour)
			return err
		}},
		{"Revoke", func(s *APIKeyService, caller *APIKey, id string) error {
			_, _, err := s.Revoke(keyContext(t, caller), id)
			return err
		}},
	}
	for _, a := range actions {
		t.Run(a.name, func(t *testing.T) {
			t.Run("OKCreator", func(t *testing.T) {
				s, _, _ := newTestKeyService()
				kt := newKeyTree(t, s)
				if err := a.do(s, kt.parent, kt.child.ID); err != nil {
					t.Fatal(err)
				}
			})
			t.Run("OKAncestor", func(t *testing.T) {
				s, _, _ := newTestKeyService()
				kt := newKeyTree(t, s)
				if err := a.do(s, kt.parent, kt.grandchild.ID); err != nil {
					t.Fatal(err)
				}
			})
			t.Run("OKAdminKey", func(t *testing.T) {
				s, _, _ := newTestKeyService()
				kt := newKeyTree(t, s)
				admin, _ := mustCreateKey(t, s, CreateAPIKey{Name: "admin", Scopes: []string{"admin"}})
				if err := a.do(s, admin, kt.grandchild.ID); err != nil {
					t.Fatal(err)
				}
			})

			refused := []struct {
				name   string
				caller func(keyTree) *APIKey
				target func(keyTree) *APIKey
			}{
				// rdev issue 14: a key with keys:write and X could take
				// over any key whose scopes are within X.
				{"ErrForbiddenUnrelatedKey", func(kt keyTree) *APIKey { return kt.other }, func(kt keyTree) *APIKey { return kt.grandchild }},
				{"ErrForbiddenSibling", func(kt keyTree) *APIKey { return kt.other }, func(kt keyTree) *APIKey { return kt.parent }},
				{"ErrForbiddenDescendant", func(kt keyTree) *APIKey { return kt.child }, func(kt keyTree) *APIKey { return kt.parent }},
			}
			for _, tt := range refused {
				t.Run(tt.name, func(t *testing.T) {
					s, repo, _ := newTestKeyService()
					kt := newKeyTree(t, s)
					caller, target := tt.caller(kt), tt.target(kt)
					before := *repo.stored(target.ID)
					err := a.do(s, caller, target.ID)
					wantCode(t, err, EFORBIDDEN)
					if !strings.Contains(ErrorMessage(err), "was not created by this key") {
						t.Errorf("message %q does not say why", ErrorMessage(err))
					}
					if after := repo.stored(target.ID); after.SecretHash != before.SecretHash || after.RevokedAt != nil {
						t.Errorf("the target changed: %+v", after)
					}
					entries := repo.audit.all()
					if last := entries[len(entries)-1]; last.Actor != caller.ID || last.Target != target.ID || last.Outcome != AuditDenied {
						t.Errorf("last audit entry %+v, want the denied attempt by %s on %s", last, caller.ID, target.ID)
					}
				})
			}
		})
	}

	t.Run("ErrForbiddenAdminMadeKey", func(t *testing.T) {
		// The case: an admin key makes ci-bot and a key with
		// keys:write + projects:read; that key may not take ci-bot over.
		s, _, _ := newTestKeyService()
		admin, _ := mustCreateKey(t, s, CreateAPIKey{Name: "admin", Scopes: []string{"admin"}})
		ciBot, token := mustCreateChild(t, s, admin, CreateAPIKey{Name: "ci-bot", Scopes: []string{"projects:read"}})
		rogue, _ := mustCreateChild(t, s, admin, CreateAPIKey{Name: "rogue", Scopes: []string{"keys:write", "projects:read"}})
		_, newToken, err := s.Rotate(keyContext(t, rogue), ciBot.ID, MaxRotationGrace)
		wantCode(t, err, EFORBIDDEN)
		if newToken != "" {
			t.Error("Rotate returned a token with an error")
		}
		mustAuthenticate(t, s, token)
	})
}

// detailString renders details as sorted key=value pairs.
func detailString(d map[string]string) string {
	var parts []string
	for k, v := range d {
		parts = append(parts, k+"="+v)
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}
