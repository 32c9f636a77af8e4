package domain

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestValidateProjectID(t *testing.T) {
	for _, id := range []string{"a", "0", "web", "my-project", "a-b-c", "a--b", "9lives", strings.Repeat("a", MaxProjectIDLength)} {
		t.Run("OK/"+id[:min(len(id), 16)], func(t *testing.T) {
			if err := ValidateProjectID(id); err != nil {
				t.Errorf("ValidateProjectID(%q): %v", id, err)
			}
		})
	}

	for _, tt := range []struct {
		name string
		id   string
	}{
		{"Empty", ""},
		{"TooLong", strings.Repeat("a", MaxProjectIDLength+1)},
		{"Upper", "My-project"},
		{"LeadingDash", "-web"},
		{"TrailingDash", "web-"},
		{"OnlyDash", "-"},
		{"Underscore", "my_project"},
		{"Dot", "my.project"},
		{"Slash", "../etc"},
		{"Space", "my project"},
		{"TrailingNewline", "web\n"},
		{"NonASCII", "café"},
	} {
		t.Run("Err"+tt.name, func(t *testing.T) {
			err := ValidateProjectID(tt.id)
			wantCode(t, err, EINVALID)
			if msg := ErrorMessage(err); !strings.HasPrefix(msg, "projectId: ") || !strings.Contains(msg, "DNS-1123") {
				t.Errorf("message %q does not explain the rule", msg)
			}
		})
	}

	t.Run("ErrLongIDTruncatedInMessage", func(t *testing.T) {
		err := ValidateProjectID(strings.Repeat("x", 10_000))
		if msg := ErrorMessage(err); len(msg) > 300 || !strings.Contains(msg, "…") {
			t.Errorf("message is %d bytes, want a truncated id: %.100q", len(msg), msg)
		}
	})
}

func FuzzValidateProjectID(f *testing.F) {
	for _, s := range []string{"", "a", "my-project", "-a", "a-", "A", "a_b", strings.Repeat("a", 63), strings.Repeat("a", 64), "web\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		err := ValidateProjectID(id)
		if err != nil {
			if ErrorCode(err) != EINVALID {
				t.Fatalf("ValidateProjectID(%q): code %q, want %s", id, ErrorCode(err), EINVALID)
			}
			return
		}
		if id == "" || len(id) > MaxProjectIDLength || id[0] == '-' || id[len(id)-1] == '-' {
			t.Fatalf("ValidateProjectID accepted %q", id)
		}
		for _, c := range []byte(id) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				t.Fatalf("ValidateProjectID accepted %q with %q", id, c)
			}
		}
	})
}

func TestProjectFilter_Matches(t *testing.T) {
	p := &Project{ID: "web", Status: ProjectRunning, Labels: map[string]string{"team": "core", "tier": "1"}}
	for _, tt := range []struct {
		name   string
		filter ProjectFilter
		want   bool
	}{
		{"Zero", ProjectFilter{}, true},
		{"Status", ProjectFilter{Status: ProjectRunning}, true},
		{"OtherStatus", ProjectFilter{Status: ProjectFailed}, false},
		{"Label", ProjectFilter{Labels: map[string]string{"team": "core"}}, true},
		{"AllLabels", ProjectFilter{Labels: map[string]string{"team": "core", "tier": "1"}}, true},
		{"LabelValue", ProjectFilter{Labels: map[string]string{"team": "edge"}}, false},
		{"MissingLabel", ProjectFilter{Labels: map[string]string{"owner": ""}}, false},
		{"StatusAndLabel", ProjectFilter{Status: ProjectRunning, Labels: map[string]string{"tier": "2"}}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.filter.Matches(p); got != tt.want {
				t.Errorf("%+v.Matches(%+v) = %v, want %v", tt.filter, p, got, tt.want)
			}
		})
	}
}

func TestProjectService_Get(t *testing.T) {
	web := &Project{ID: "web", Namespace: "rdev", Status: ProjectRunning}
	reader := &APIKey{ID: "0123456789abcdef", Scopes: Scopes{ScopeProjectsRead}}

	t.Run("OK", func(t *testing.T) {
		s := NewProjectService(newProjectRepo(web), newFakeHub())
		got, err := s.Get(keyContext(t, reader), "web")
		if err != nil {
			t.Fatal(err)
		}
		if got != web {
			t.Errorf("Get = %+v, want %+v", got, web)
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		s := NewProjectService(newProjectRepo(web), newFakeHub())
		_, err := s.Get(keyContext(t, reader), "api")
		wantCode(t, err, ENOTFOUND)
	})

	for _, id := range []string{"", "Web", "../web", "web_1", strings.Repeat("a", 200)} {
		t.Run("ErrNotFoundInvalidID", func(t *testing.T) {
			repo := newProjectRepo(web)
			got, err := NewProjectService(repo, newFakeHub()).Get(keyContext(t, reader), id)
			wantCode(t, err, ENOTFOUND)
			if got != nil {
				t.Errorf("Get returned %+v with an error", got)
			}
			if n := repo.callCount(); n != 0 {
				t.Errorf("repo called %d times for invalid id %q", n, id)
			}
			if msg := ErrorMessage(err); len(msg) > 120 {
				t.Errorf("message is %d bytes: %q", len(msg), msg)
			}
		})
	}

	t.Run("ErrForbidden", func(t *testing.T) {
		repo := newProjectRepo(web)
		_, err := NewProjectService(repo, newFakeHub()).Get(keyContext(t, &APIKey{ID: "0123456789abcdef", Scopes: Scopes{ScopeKeysRead}}), "web")
		wantCode(t, err, EFORBIDDEN)
		if repo.callCount() != 0 {
			t.Error("repo called without the scope")
		}
	})

	t.Run("ErrUnauthenticated", func(t *testing.T) {
		_, err := NewProjectService(newProjectRepo(web), newFakeHub()).Get(t.Context(), "web")
		wantCode(t, err, EUNAUTHENTICATED)
	})
}

func TestProjectService_List(t *testing.T) {
	projects := []*Project{
		{ID: "alpha", Status: ProjectRunning, Labels: map[string]string{"team": "core"}},
		{ID: "bravo", Status: ProjectPending, Labels: map[string]string{"team": "edge"}},
		{ID: "charlie", Status: ProjectRunning, Labels: map[string]string{"team": "edge"}},
		{ID: "delta", Status: ProjectFailed},
		{ID: "echo", Status: ProjectRunning, Labels: map[string]string{"team": "core"}},
	}
	ctx := keyContext(t, &APIKey{ID: "0123456789abcdef", Scopes: Scopes{ScopeProjectsRead}})
	list := func(t *testing.T, f ProjectFilter, req PageRequest) Page[*Project] {
		t.Helper()
		page, err := NewProjectService(newProjectRepo(projects...), newFakeHub()).List(ctx, f, req)
		if err != nil {
			t.Fatalf("List(%+v, %+v): %v", f, req, err)
		}
		return page
	}

	for _, tt := range []struct {
		name           string
		filter         ProjectFilter
		req            PageRequest
		ids            []string
		next, previous bool
	}{
		{"OK", ProjectFilter{}, PageRequest{First: 20}, []string{"alpha", "bravo", "charlie", "delta", "echo"}, false, false},
		{"FirstPage", ProjectFilter{}, PageRequest{First: 2}, []string{"alpha", "bravo"}, true, false},
		{"MiddlePage", ProjectFilter{}, PageRequest{First: 2, After: "bravo"}, []string{"charlie", "delta"}, true, true},
		{"LastPage", ProjectFilter{}, PageRequest{First: 2, After: "delta"}, []string{"echo"}, false, true},
		{"ExactLastPage", ProjectFilter{}, PageRequest{First: 2, After: "charlie"}, []string{"delta", "echo"}, false, true},
		{"PastEnd", ProjectFilter{}, PageRequest{First: 2, After: "zulu"}, nil, false, true},
		{"FirstZero", ProjectFilter{}, PageRequest{First: 0}, []string{}, true, false},
		{"Status", ProjectFilter{Status: ProjectRunning}, PageRequest{First: 20}, []string{"alpha", "charlie", "echo"}, false, false},
		{"StatusPaged", ProjectFilter{Status: ProjectRunning}, PageRequest{First: 1, After: "alpha"}, []string{"charlie"}, true, true},
		{"Label", ProjectFilter{Labels: map[string]string{"team": "edge"}}, PageRequest{First: 20}, []string{"bravo", "charlie"}, false, false},
		{"StatusAndLabel", ProjectFilter{Status: ProjectRunning, Labels: map[string]string{"team": "edge"}}, PageRequest{First: 20}, []string{"charlie"}, false, false},
		{"NoMatch", ProjectFilter{Status: ProjectGone}, PageRequest{First: 20}, nil, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			page := list(t, tt.filter, tt.req)
			var ids []string
			for _, p := range page.Items {
				ids = append(ids, p.ID)
			}
			if len(ids) != len(tt.ids) || (len(ids) > 0 && !reflect.DeepEqual(ids, tt.ids)) {
				t.Errorf("items = %q, want %q", ids, tt.ids)
			}
			if page.HasNextPage != tt.next || page.HasPreviousPage != tt.previous {
				t.Errorf("HasNextPage, HasPreviousPage = %v, %v; want %v, %v", page.HasNextPage, page.HasPreviousPage, tt.next, tt.previous)
			}
		})
	}

	t.Run("WalkWithCursors", func(t *testing.T) {
		s := NewProjectService(newProjectRepo(projects...), newFakeHub())
		var ids []string
		var after *string
		for range len(projects) + 1 {
			req, err := NewPageRequest(ptr(2), after)
			if err != nil {
				t.Fatal(err)
			}
			page, err := s.List(ctx, ProjectFilter{}, req)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range page.Items {
				ids = append(ids, p.ID)
			}
			if !page.HasNextPage {
				break
			}
			after = ptr(EncodeCursor(page.Items[len(page.Items)-1].ID))
		}
		if want := []string{"alpha", "bravo", "charlie", "delta", "echo"}; !reflect.DeepEqual(ids, want) {
			t.Errorf("walked %q, want %q", ids, want)
		}
	})

	t.Run("PassesFilterAndLimit", func(t *testing.T) {
		repo := newProjectRepo(projects...)
		labels := map[string]string{"team": "core"}
		f := ProjectFilter{Status: ProjectRunning, Labels: labels, AfterID: "ignored", Limit: 999}
		if _, err := NewProjectService(repo, newFakeHub()).List(ctx, f, PageRequest{First: 3, After: "alpha"}); err != nil {
			t.Fatal(err)
		}
		want := ProjectFilter{Status: ProjectRunning, Labels: labels, AfterID: "alpha", Limit: 4}
		if len(repo.filters) != 1 || !reflect.DeepEqual(repo.filters[0], want) {
			t.Fatalf("repo got %+v, want [%+v]", repo.filters, want)
		}
		// The service hands the repo its own copy of the labels, so an
		// adapter that keeps the filter cannot see later changes.
		labels["team"] = "edge"
		if repo.filters[0].Labels["team"] != "core" {
			t.Error("repo filter shares the caller's label map")
		}
	})

	for _, status := range []ProjectStatus{"running", "UNKNOWN", " RUNNING"} {
		t.Run("ErrInvalidStatus", func(t *testing.T) {
			repo := newProjectRepo(projects...)
			_, err := NewProjectService(repo, newFakeHub()).List(ctx, ProjectFilter{Status: status}, PageRequest{First: 20})
			wantCode(t, err, EINVALID)
			if !strings.Contains(ErrorMessage(err), string(status)) {
				t.Errorf("message %q does not name %q", ErrorMessage(err), status)
			}
			if repo.callCount() != 0 {
				t.Error("repo called with an invalid status")
			}
		})
	}

	t.Run("ErrInvalidLabel", func(t *testing.T) {
		repo := newProjectRepo(projects...)
		_, err := NewProjectService(repo, newFakeHub()).List(ctx, ProjectFilter{Labels: map[string]string{"team": "a b"}}, PageRequest{First: 20})
		wantInvalid(t, err, "filter.labels: ")
		if repo.callCount() != 0 {
			t.Error("repo called with an invalid label filter")
		}
	})

	t.Run("EveryStatusValid", func(t *testing.T) {
		for _, st := range ProjectStatuses {
			list(t, ProjectFilter{Status: st}, PageRequest{First: 1})
		}
	})

	t.Run("ErrForbidden", func(t *testing.T) {
		ctx := keyContext(t, &APIKey{ID: "0123456789abcdef", Scopes: Scopes{ScopeCommandsRead}})
		_, err := NewProjectService(newProjectRepo(projects...), newFakeHub()).List(ctx, ProjectFilter{}, PageRequest{First: 1})
		wantCode(t, err, EFORBIDDEN)
	})

	t.Run("ErrUnauthenticated", func(t *testing.T) {
		_, err := NewProjectService(newProjectRepo(projects...), newFakeHub()).List(t.Context(), ProjectFilter{}, PageRequest{First: 1})
		wantCode(t, err, EUNAUTHENTICATED)
	})

	t.Run("ErrRepo", func(t *testing.T) {
		boom := errors.New("informer not synced")
		_, err := NewProjectService(failingProjectRepo{boom}, newFakeHub()).List(ctx, ProjectFilter{}, PageRequest{First: 1})
		if !errors.Is(err, boom) {
			t.Errorf("err = %v, want %v", err, boom)
		}
	})
}

// failingProjectRepo fails every call with err.
type failingProjectRepo struct{ err error }

func (r failingProjectRepo) FindProjectByID(_ context.Context, _ string) (*Project, error) {
	return nil, r.err
}

func (r failingProjectRepo) FindProjects(_ context.Context, _ ProjectFilter) ([]*Project, error) {
	return nil, r.err
}
