package kube

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/rdev-hq/rdev/domain"
)

// nsProjects is a domain.ProjectRepository whose projects live in the
// namespaces it maps them to.
type nsProjects map[string]string

func (p nsProjects) FindProjectByID(_ context.Context, id string) (*domain.Project, error) {
	ns, ok := p[id]
	if !ok {
		return nil, notFound(id)
	}
	return &domain.Project{ID: id, Namespace: ns, Status: domain.ProjectRunning}, nil
}

func (p nsProjects) FindProjects(context.Context, domain.ProjectFilter) ([]*domain.Project, error) {
	return nil, nil
}

// auditLog records the entries appended to it.
type auditLog struct {
	mu      sync.Mutex
	entries []*domain.AuditEntry
}

func (a *auditLog) AppendAudit(_ context.Context, entries ...*domain.AuditEntry) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.entries = append(a.entries, entries...)
	return nil
}

func (a *auditLog) FindAuditEntries(context.Context, domain.AuditFilter) ([]*domain.AuditEntry, error) {
	return nil, nil
}

func (a *auditLog) ReadAuditChain(context.Context, int64, int) ([]*domain.AuditEntry, error) {
	return nil, nil
}

func (a *auditLog) AuditHead(context.Context) (domain.AuditHead, error) {
	return domain.AuditHead{}, nil
}

func (a *auditLog) actions() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, e := range a.entries {
		out = append(out, e.Action)
	}
	return out
}

func newSecret(project, name string, at time.Time, by string) *domain.Secret {
	return &domain.Secret{ProjectID: project, Name: name, Delivery: domain.SecretAsEnv, CreatedBy: by, CreatedAt: at, UpdatedAt: at}
}

func wantErrCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if domain.ErrorCode(err) != code {
		t.Errorf("%s: %v, want %s", what, err, code)
	}
}

// TestSecrets_Cluster runs the Kubernetes secret store against a real API
// server: set, replace (delivery included), list with times, open,
// delete, not found, the
// limits, concurrent writers, and a Secret that is not rdev's left alone.
func TestSecrets_Cluster(t *testing.T) {
	t.Parallel()
	c := mustCluster(t)
	ns := c.namespace(t)
	audit := &auditLog{}
	s := NewSecrets(c.client, nsProjects{"p": ns, "q": ns, "big": ns, "race": ns}, SecretsOptions{Audit: audit})
	ctx := t.Context()
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 123000, time.UTC)
	t1 := t0.Add(time.Hour)

	t.Run("SetReplaceListDelete", func(t *testing.T) {
		got, err := s.PutSecret(ctx, newSecret("p", "TOKEN", t0, "k1"), "v1", 10, &domain.AuditEntry{Action: domain.AuditSecretSet})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(newSecret("p", "TOKEN", t0, "k1"), got); diff != "" {
			t.Errorf("PutSecret (-want +got):\n%s", diff)
		}
		if _, err := s.PutSecret(ctx, newSecret("p", "A_FIRST", t0, ""), "a", 10, nil); err != nil {
			t.Fatal(err)
		}
		asFile := newSecret("p", "TOKEN", t1, "k2")
		asFile.Delivery = domain.SecretAsFile
		got, err = s.PutSecret(ctx, asFile, "v2", 10, nil)
		want := &domain.Secret{ProjectID: "p", Name: "TOKEN", Delivery: domain.SecretAsFile, CreatedBy: "k1", CreatedAt: t0, UpdatedAt: t1}
		if err != nil || !cmp.Equal(want, got) {
			t.Errorf("replacing: %+v, %v; want %+v", got, err, want)
		}

		obj, err := c.client.CoreV1().Secrets(ns).Get(ctx, "rdev-project-secrets-p", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if obj.Type != corev1.SecretTypeOpaque || obj.Labels[ManagedByLabel] != "rdev" || obj.Labels[DefaultLabelKey] != "p" ||
			string(obj.Data["TOKEN"]) != "v2" || string(obj.Data["A_FIRST"]) != "a" || len(obj.Data) != 2 {
			t.Errorf("the Secret as stored: type %s, labels %v, data %q", obj.Type, obj.Labels, obj.Data)
		}
		if a := obj.Annotations[SecretTimesAnnotation]; !strings.Contains(a, `"TOKEN":{"delivery":"FILE","createdAt":"2026-12-07T10:00:00.000123Z","updatedAt":"2026-12-07T11:00:00.000123Z","createdBy":"k1"}`) || strings.Contains(a, "v2") {
			t.Errorf("annotation %s = %s", SecretTimesAnnotation, a)
		}

		list, err := s.FindSecrets(ctx, "p")
		wantList := []*domain.Secret{newSecret("p", "A_FIRST", t0, ""), want}
		if err != nil || !cmp.Equal(wantList, list) {
			t.Errorf("FindSecrets: %v (-want +got):\n%s", err, cmp.Diff(wantList, list))
		}
		if of, err := s.FindSecretsOf(ctx, []string{"p", "none-here"}); err != nil || len(of) != 1 || !cmp.Equal(wantList, of["p"]) {
			t.Errorf("FindSecretsOf: %v, %v; want p's secrets only", of, err)
		}
		open, err := s.OpenSecrets(ctx, "p")
		if err != nil || len(open) != 2 || open[0].Name != "A_FIRST" || open[0].Value != "a" || open[1].Value != "v2" || !open[1].CreatedAt.Equal(t0) ||
			open[1].Delivery != domain.SecretAsFile || open[0].Delivery != domain.SecretAsEnv {
			t.Errorf("OpenSecrets: %+v, %v", open, err)
		}

		if err := s.DeleteSecret(ctx, "p", "TOKEN", &domain.AuditEntry{Action: domain.AuditSecretDelete}); err != nil {
			t.Fatal(err)
		}
		wantErrCode(t, "deleting it again", s.DeleteSecret(ctx, "p", "TOKEN", nil), domain.ENOTFOUND)
		if list, err := s.FindSecrets(ctx, "p"); err != nil || len(list) != 1 || list[0].Name != "A_FIRST" {
			t.Errorf("after the delete: %+v, %v", list, err)
		}
		if got := audit.actions(); !cmp.Equal(got, []string{domain.AuditSecretSet, domain.AuditSecretDelete}) {
			t.Errorf("audit entries appended: %v", got)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		if list, err := s.FindSecrets(ctx, "race"); err != nil || len(list) != 0 {
			t.Errorf("a project without a Secret: %v, %v", list, err)
		}
		if open, err := s.OpenSecrets(ctx, "big"); err != nil || len(open) != 0 {
			t.Errorf("opening a project without a Secret: %v, %v", open, err)
		}
		wantErrCode(t, "deleting from a project without a Secret", s.DeleteSecret(ctx, "big", "X", nil), domain.ENOTFOUND)
		_, err := s.PutSecret(ctx, newSecret("nope", "X", t0, ""), "v", 10, nil)
		wantErrCode(t, "setting in an unknown project", err, domain.ENOTFOUND)
		_, err = s.FindSecrets(ctx, "nope")
		wantErrCode(t, "listing an unknown project", err, domain.ENOTFOUND)
	})

	t.Run("Limits", func(t *testing.T) {
		for i := range 3 {
			if _, err := s.PutSecret(ctx, newSecret("big", fmt.Sprintf("S%d", i), t0, ""), "v", 3, nil); err != nil {
				t.Fatal(err)
			}
		}
		_, err := s.PutSecret(ctx, newSecret("big", "S3", t0, ""), "v", 3, nil)
		wantErrCode(t, "a secret past the limit", err, domain.ECONFLICT)
		if _, err := s.PutSecret(ctx, newSecret("big", "S0", t1, ""), "w", 3, nil); err != nil {
			t.Errorf("replacing one at the limit: %v", err)
		}
		half := strings.Repeat("x", MaxSecretBytes/2)
		if _, err := s.PutSecret(ctx, newSecret("big", "HALF", t0, ""), half, 10, nil); err != nil {
			t.Fatal(err)
		}
		_, err = s.PutSecret(ctx, newSecret("big", "MORE", t0, ""), half, 10, nil)
		wantErrCode(t, "secrets past what a Secret holds", err, domain.ECONFLICT)
		if list, _ := s.FindSecrets(ctx, "big"); len(list) != 4 {
			t.Errorf("after the refusals: %d secrets, want 4", len(list))
		}
	})

	t.Run("ConcurrentWriters", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Go(func() {
				_, errs[i] = s.PutSecret(ctx, newSecret("race", fmt.Sprintf("W%d", i), t0, ""), "v", 10, nil)
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("writer %d: %v", i, err)
			}
		}
		if list, err := s.FindSecrets(ctx, "race"); err != nil || len(list) != len(errs) {
			t.Errorf("after concurrent writers: %d secrets, %v; want %d", len(list), err, len(errs))
		}
	})

	t.Run("KeysAddedByHand", func(t *testing.T) {
		// A key rdev would refuse as a name never reaches a command.
		obj, err := c.client.CoreV1().Secrets(ns).Get(ctx, "rdev-project-secrets-p", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		obj.Data["LD_PRELOAD"], obj.Data["HAND_MADE"] = []byte("/tmp/x.so"), []byte("h")
		if _, err := c.client.CoreV1().Secrets(ns).Update(ctx, obj, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		open, err := s.OpenSecrets(ctx, "p")
		var names []string
		for _, o := range open {
			names = append(names, o.Name)
		}
		if err != nil || !cmp.Equal(names, []string{"A_FIRST", "HAND_MADE"}) {
			t.Errorf("OpenSecrets after keys added by hand: %v, %v; want A_FIRST and HAND_MADE", names, err)
		}
		if list, err := s.FindSecrets(ctx, "p"); err != nil || len(list) != 2 || !list[1].CreatedAt.Equal(obj.CreationTimestamp.UTC()) ||
			list[1].Delivery != domain.SecretAsEnv {
			t.Errorf("FindSecrets after keys added by hand: %+v, %v", list, err)
		}
	})

	t.Run("NotRdevs", func(t *testing.T) {
		foreign := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "rdev-project-secrets-q", Labels: map[string]string{"app": "other"}},
			Data:       map[string][]byte{"TOKEN": []byte("theirs")},
		}
		foreign, err := c.client.CoreV1().Secrets(ns).Create(ctx, foreign, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		before := len(audit.actions())
		_, err = s.PutSecret(ctx, newSecret("q", "TOKEN", t0, ""), "mine", 10, &domain.AuditEntry{Action: domain.AuditSecretSet})
		wantErrCode(t, "setting", err, domain.ECONFLICT)
		wantErrCode(t, "deleting", s.DeleteSecret(ctx, "q", "TOKEN", nil), domain.ECONFLICT)
		_, err = s.FindSecrets(ctx, "q")
		wantErrCode(t, "listing", err, domain.ECONFLICT)
		open, err := s.OpenSecrets(ctx, "q")
		wantErrCode(t, "opening", err, domain.ECONFLICT)
		if len(open) != 0 {
			t.Errorf("opened a Secret that is not rdev's: %+v", open)
		}
		after, err := c.client.CoreV1().Secrets(ns).Get(ctx, "rdev-project-secrets-q", metav1.GetOptions{})
		if err != nil || after.ResourceVersion != foreign.ResourceVersion || string(after.Data["TOKEN"]) != "theirs" {
			t.Errorf("the Secret that is not rdev's was changed: %+v, %v", after, err)
		}
		if n := len(audit.actions()); n != before {
			t.Errorf("refused changes appended %d audit entries", n-before)
		}
	})
}

// TestSecrets_Unreachable: with no API server, every call is UNAVAILABLE,
// promptly, through the cluster's breaker.
func TestSecrets_Unreachable(t *testing.T) {
	t.Parallel()
	cl, err := NewClusterForConfig(&rest.Config{Host: "https://127.0.0.1:9"}, Config{Breaker: BreakerSettings{Failures: 2, OpenFor: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	s := cl.NewSecrets(nsProjects{"p": "default"}, nil)
	for i := range 3 {
		_, err := s.PutSecret(t.Context(), newSecret("p", "X", time.Now(), ""), "v", 10, nil)
		wantErrCode(t, fmt.Sprintf("setting, try %d", i), err, domain.EUNAVAILABLE)
		_, err = s.OpenSecrets(t.Context(), "p")
		wantErrCode(t, fmt.Sprintf("opening, try %d", i), err, domain.EUNAVAILABLE)
	}
	if st := cl.Breaker().State(); st != "open" {
		t.Errorf("breaker %s after failures, want open", st)
	}
}
