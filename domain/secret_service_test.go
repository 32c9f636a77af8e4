package domain

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// secretRepo is an in-memory SecretRepository.
type secretRepo struct {
	mu      sync.Mutex
	secrets map[[2]string]*SealedSecret
	check   []byte
	audit   *auditLog
}

var _ SecretRepository = (*secretRepo)(nil)

func newSecretRepo() *secretRepo {
	return &secretRepo{secrets: map[[2]string]*SealedSecret{}, audit: newAuditLog()}
}

func (r *secretRepo) PutSecret(_ context.Context, s *SealedSecret, limit int, audit *AuditEntry) (*Secret, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := [2]string{s.ProjectID, s.Name}
	if old, ok := r.secrets[k]; ok {
		old.Sealed, old.Delivery, old.UpdatedAt = bytes.Clone(s.Sealed), s.Delivery, s.UpdatedAt
	} else {
		n := 0
		for k := range r.secrets {
			if k[0] == s.ProjectID {
				n++
			}
		}
		if n >= limit {
			return nil, Errorf(ECONFLICT, "too many")
		}
		cp := *s
		cp.Sealed = bytes.Clone(s.Sealed)
		r.secrets[k] = &cp
	}
	if audit != nil {
		_ = r.audit.add(audit)
	}
	sec := r.secrets[k].Secret
	return &sec, nil
}

func (r *secretRepo) DeleteSecret(_ context.Context, projectID, name string, audit *AuditEntry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := [2]string{projectID, name}
	if _, ok := r.secrets[k]; !ok {
		return Errorf(ENOTFOUND, "no secret")
	}
	delete(r.secrets, k)
	if audit != nil {
		_ = r.audit.add(audit)
	}
	return nil
}

func (r *secretRepo) sealed(projectID string) []*SealedSecret {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*SealedSecret
	for k, s := range r.secrets {
		if projectID == "" || k[0] == projectID {
			cp := *s
			out = append(out, &cp)
		}
	}
	slices.SortFunc(out, func(a, b *SealedSecret) int { return strings.Compare(a.ProjectID+"/"+a.Name, b.ProjectID+"/"+b.Name) })
	return out
}

func (r *secretRepo) FindSecrets(_ context.Context, projectID string) ([]*Secret, error) {
	var out []*Secret
	for _, s := range r.sealed(projectID) {
		out = append(out, &s.Secret)
	}
	return out, nil
}

func (r *secretRepo) FindSecretsOf(ctx context.Context, projectIDs []string) (map[string][]*Secret, error) {
	out := map[string][]*Secret{}
	for _, id := range projectIDs {
		if list, _ := r.FindSecrets(ctx, id); len(list) > 0 {
			out[id] = list
		}
	}
	return out, nil
}

func (r *secretRepo) FindSealedSecrets(_ context.Context, projectID string) ([]*SealedSecret, error) {
	return r.sealed(projectID), nil
}

func (r *secretRepo) SecretKeyCheck(context.Context) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.check == nil {
		return nil, Errorf(ENOTFOUND, "none")
	}
	return r.check, nil
}

func (r *secretRepo) InitSecretKeyCheck(_ context.Context, check []byte) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.check == nil {
		r.check = check
	}
	return r.check, nil
}

func (r *secretRepo) RewrapSecrets(_ context.Context, rewrap func(sealed, ad []byte) ([]byte, error), check []byte) (int, error) {
	all := r.sealed("")
	for _, s := range all {
		sealed, err := rewrap(s.Sealed, SecretAD(s.ProjectID, s.Name))
		if err != nil {
			return 0, fmt.Errorf("secret %s of project %s: %w", s.Name, s.ProjectID, err)
		}
		s.Sealed = sealed
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range all {
		r.secrets[[2]string{s.ProjectID, s.Name}] = s
	}
	r.check = check
	return len(all), nil
}

// xorSealer stands for infra/secretbox: it "seals" by XOR with its key
// byte and prefixes the key byte and the associated data, so that a wrong
// key or other associated data fails to open.
type xorSealer byte

func (x xorSealer) Seal(plaintext, ad []byte) ([]byte, error) {
	out := append([]byte{byte(x)}, ad...)
	out = append(out, 0)
	for _, b := range plaintext {
		out = append(out, b^byte(x))
	}
	return out, nil
}

func (x xorSealer) Open(sealed, ad []byte) ([]byte, error) {
	if len(sealed) < len(ad)+2 || sealed[0] != byte(x) || !bytes.Equal(sealed[1:1+len(ad)], ad) {
		return nil, errors.New("does not open")
	}
	var out []byte
	for _, b := range sealed[len(ad)+2:] {
		out = append(out, b^byte(x))
	}
	return out, nil
}

// sealedService is a SecretService over SealedSecrets, with the store's
// key methods (CheckKey, RotateKey) at hand.
type sealedService struct {
	*SecretService
	*SealedSecrets
}

func newSealedService(repo SecretRepository, projects ProjectRepository, sealer SecretSealer, audit *AuditService) *sealedService {
	sealed := NewSealedSecrets(repo, sealer)
	return &sealedService{SecretService: NewSecretService(sealed, projects, audit), SealedSecrets: sealed}
}

func newTestSecretService(sealer SecretSealer) (*sealedService, *secretRepo) {
	repo := newSecretRepo()
	projects := newProjectRepo(
		&Project{ID: "pay", Status: ProjectRunning, Labels: map[string]string{"team": "payments"}},
		&Project{ID: "search", Status: ProjectRunning},
		&Project{ID: "web", Status: ProjectRunning},
	)
	return newSealedService(repo, projects, sealer, NewAuditService(repo.audit, nil)), repo
}

func secretKey(tb testing.TB, scopes []Scope, projects ...string) context.Context {
	tb.Helper()
	return keyContext(tb, &APIKey{ID: "k1", Scopes: scopes, Projects: ProjectScope{Names: projects}})
}

func TestSecretService_Set(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		s, repo := newTestSecretService(xorSealer(7))
		sec, err := s.Set(secretKey(t, []Scope{ScopeSecretsWrite}, "pay"), SecretInput{ProjectID: "pay", Name: "API_TOKEN", Value: "supersecretvalue"})
		if err != nil {
			t.Fatal(err)
		}
		if sec.Name != "API_TOKEN" || sec.ProjectID != "pay" || sec.CreatedBy != "k1" {
			t.Errorf("Set = %+v", sec)
		}
		stored := repo.sealed("pay")
		if len(stored) != 1 || bytes.Contains(stored[0].Sealed, []byte("supersecretvalue")) {
			t.Fatalf("stored %d values (want one), or one in clear", len(stored))
		}
		entries := repo.audit.all()
		if len(entries) != 1 || entries[0].Action != AuditSecretSet || entries[0].Details["name"] != "API_TOKEN" ||
			entries[0].Details[AuditProjectDetail] != "pay" {
			t.Fatalf("audit = %+v", entries)
		}
		for k, v := range entries[0].Details {
			if strings.Contains(k+v, "supersecretvalue") {
				t.Errorf("audit detail %s=%s shows the value", k, v)
			}
		}
		got, err := s.Open(t.Context(), "pay")
		if err != nil || got.Env["API_TOKEN"] != "supersecretvalue" || len(got.Files) != 0 {
			t.Errorf("Open = %+v, %v", got, err)
		}
	})
	t.Run("Delivery", func(t *testing.T) {
		s, repo := newTestSecretService(xorSealer(7))
		op := operatorContext(t)
		if _, err := s.Set(op, SecretInput{ProjectID: "pay", Name: "A", Value: "v", Delivery: "ENVIRONMENT"}); ErrorCode(err) != EINVALID {
			t.Errorf("an unknown delivery: %v, want EINVALID", err)
		}
		sec, err := s.Set(op, SecretInput{ProjectID: "pay", Name: "A", Value: "v"})
		if err != nil || sec.Delivery != SecretAsEnv {
			t.Fatalf("Set without a delivery = %+v, %v; want ENV", sec, err)
		}
		// Setting it again moves it from the environment to a file.
		if sec, err = s.Set(op, SecretInput{ProjectID: "pay", Name: "A", Value: "w", Delivery: SecretAsFile}); err != nil || sec.Delivery != SecretAsFile {
			t.Fatalf("Set as a file = %+v, %v", sec, err)
		}
		if stored := repo.sealed("pay"); len(stored) != 1 || stored[0].Delivery != SecretAsFile {
			t.Errorf("stored %+v", stored)
		}
		got, err := s.Open(t.Context(), "pay")
		if err != nil || len(got.Env) != 0 || got.Files["A"] != "w" {
			t.Errorf("Open = %+v, %v; want A as a file only", got, err)
		}
	})
	for _, tt := range []struct {
		name, project, secret, value string
		scopes                       []Scope
		projects                     []string
		code                         string
	}{
		{"ErrNoScope", "pay", "A", "v", []Scope{ScopeCommandsWrite, ScopeProjectsRead}, nil, EFORBIDDEN},
		{"ErrOutOfScope", "search", "A", "v", []Scope{ScopeSecretsWrite}, []string{"pay"}, ENOTFOUND},
		{"ErrNoProject", "nope", "A", "v", []Scope{ScopeSecretsWrite}, nil, ENOTFOUND},
		{"ErrBadProject", "Not A Name", "A", "v", []Scope{ScopeSecretsWrite}, nil, ENOTFOUND},
		{"ErrLowerCase", "pay", "token", "v", []Scope{ScopeSecretsWrite}, nil, EINVALID},
		{"ErrDigitFirst", "pay", "1A", "v", []Scope{ScopeSecretsWrite}, nil, EINVALID},
		{"ErrReservedPrefix", "pay", "RDEV_TOKEN", "v", []Scope{ScopeSecretsWrite}, nil, EINVALID},
		{"ErrReservedName", "pay", "PATH", "v", []Scope{ScopeSecretsWrite}, nil, EINVALID},
		{"ErrLinker", "pay", "LD_PRELOAD", "v", []Scope{ScopeSecretsWrite}, nil, EINVALID},
		{"ErrNUL", "pay", "A", "a\x00b", []Scope{ScopeSecretsWrite}, nil, EINVALID},
		{"ErrTooLong", "pay", "A", strings.Repeat("x", MaxSecretValueBytes+1), []Scope{ScopeSecretsWrite}, nil, EINVALID},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, repo := newTestSecretService(xorSealer(7))
			_, err := s.Set(secretKey(t, tt.scopes, tt.projects...), SecretInput{ProjectID: tt.project, Name: tt.secret, Value: tt.value})
			wantCode(t, err, tt.code)
			if len(repo.sealed("")) != 0 {
				t.Error("a refused set stored a secret")
			}
			if e := repo.audit.all(); len(e) != 1 || e[0].Outcome == AuditSuccess {
				t.Errorf("audit = %+v, want the refusal", e)
			}
		})
	}
	t.Run("ErrNoKey", func(t *testing.T) {
		s, _ := newTestSecretService(nil)
		_, err := s.Set(operatorContext(t), SecretInput{ProjectID: "pay", Name: "A", Value: "v"})
		wantCode(t, err, EUNAVAILABLE)
	})
	t.Run("BySelector", func(t *testing.T) {
		s, _ := newTestSecretService(xorSealer(7))
		ctx := keyContext(t, &APIKey{ID: "k1", Scopes: Scopes{ScopeSecretsWrite, ScopeProjectsRead},
			Projects: ProjectScope{Selectors: []LabelSelector{mustSelector(t, "team=payments")}}})
		if _, err := s.Set(ctx, SecretInput{ProjectID: "pay", Name: "A", Value: "v"}); err != nil {
			t.Errorf("pay by selector: %v", err)
		}
		_, err := s.Set(ctx, SecretInput{ProjectID: "search", Name: "A", Value: "v"})
		wantCode(t, err, ENOTFOUND)
		list, err := s.List(ctx, "pay")
		if err != nil || len(list) != 1 {
			t.Errorf("List(pay) = %v, %v", list, err)
		}
		_, err = s.List(ctx, "search")
		wantCode(t, err, ENOTFOUND)
	})
}

func mustSelector(tb testing.TB, text string) LabelSelector {
	tb.Helper()
	sel, err := ParseLabelSelector(text)
	if err != nil {
		tb.Fatal(err)
	}
	return sel
}

func TestSecretService_Delete(t *testing.T) {
	s, repo := newTestSecretService(xorSealer(7))
	op := operatorContext(t)
	for _, p := range []string{"pay", "search"} {
		if _, err := s.Set(op, SecretInput{ProjectID: p, Name: "A", Value: "v"}); err != nil {
			t.Fatal(err)
		}
	}
	wantCode(t, s.Delete(secretKey(t, []Scope{ScopeSecretsWrite}, "pay"), "search", "A"), ENOTFOUND)
	wantCode(t, s.Delete(secretKey(t, []Scope{ScopeProjectsRead}), "pay", "A"), EFORBIDDEN)
	wantCode(t, s.Delete(op, "pay", "NOPE"), ENOTFOUND)
	wantCode(t, s.Delete(op, "pay", "bad name"), ENOTFOUND)
	if err := s.Delete(secretKey(t, []Scope{ScopeSecretsWrite}, "pay"), "pay", "A"); err != nil {
		t.Fatal(err)
	}
	if got := repo.sealed(""); len(got) != 1 || got[0].ProjectID != "search" {
		t.Errorf("left %v, want search's only", got)
	}
	last := repo.audit.all()[len(repo.audit.all())-1]
	if last.Action != AuditSecretDelete || last.Outcome != AuditSuccess || last.Details["name"] != "A" {
		t.Errorf("last audit entry = %+v", last)
	}
}

func TestSecretService_List(t *testing.T) {
	s, _ := newTestSecretService(xorSealer(7))
	op := operatorContext(t)
	for _, n := range []string{"B", "A"} {
		if _, err := s.Set(op, SecretInput{ProjectID: "pay", Name: n, Value: "v"}); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.List(secretKey(t, []Scope{ScopeProjectsRead}), "pay")
	if err != nil || len(list) != 2 || list[0].Name != "A" {
		t.Errorf("List = %v, %v", list, err)
	}
	_, err = s.List(secretKey(t, []Scope{ScopeCommandsRead}), "pay")
	wantCode(t, err, EFORBIDDEN)
}

func TestSealedSecrets_CheckKey(t *testing.T) {
	s, repo := newTestSecretService(xorSealer(7))
	if err := s.CheckKey(t.Context()); err != nil {
		t.Fatalf("first start: %v", err)
	}
	if err := s.CheckKey(t.Context()); err != nil {
		t.Fatalf("second start: %v", err)
	}
	wrong := newSealedService(repo, nil, xorSealer(8), nil)
	err := wrong.CheckKey(t.Context())
	if err == nil || !strings.Contains(err.Error(), "not the one the stored secrets were sealed with") {
		t.Errorf("wrong key: %v", err)
	}
	none := newSealedService(repo, nil, nil, nil)
	if err := none.CheckKey(t.Context()); err == nil || !strings.Contains(err.Error(), "no secrets key") {
		t.Errorf("no key with secrets stored: %v", err)
	}
	if err := newSealedService(newSecretRepo(), nil, nil, nil).CheckKey(t.Context()); err != nil {
		t.Errorf("no key and nothing stored: %v", err)
	}
}

func TestSealedSecrets_RotateKey(t *testing.T) {
	s, repo := newTestSecretService(xorSealer(7))
	op := operatorContext(t)
	if err := s.CheckKey(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for i, n := range []string{"A", "B", "C"} {
		v := strings.Repeat("v", i+1)
		if _, err := s.Set(op, SecretInput{ProjectID: "pay", Name: n, Value: v}); err != nil {
			t.Fatal(err)
		}
		want[n] = v
	}
	r, err := s.RotateKey(t.Context(), xorSealer(9))
	if err != nil || r.Rewrapped != 3 || r.Stored != 3 || r.KeyIDs != nil {
		t.Fatalf("RotateKey = %+v, %v; want 3 of 3 rewrapped, no key IDs (the sealer names none)", r, err)
	}
	if err := s.CheckKey(t.Context()); err == nil {
		t.Error("the old key still passes the key check")
	}
	next := newSealedService(repo, nil, xorSealer(9), nil)
	if err := next.CheckKey(t.Context()); err != nil {
		t.Fatalf("new key: %v", err)
	}
	got, err := next.Open(t.Context(), "pay")
	if err != nil || !maps.Equal(got.Env, want) {
		t.Errorf("Open under the new key = %v, %v; want %v", got.Env, err, want)
	}
	if _, err := s.Open(t.Context(), "pay"); ErrorCode(err) != EINTERNAL {
		t.Errorf("Open under the old key: %v, want EINTERNAL (not an outage: waiting would not open it)", err)
	}
}

// xorRing stands for a keyring of infra/secretbox: it seals under its
// first key and opens under the key the sealed value names, if it holds it.
type xorRing []xorSealer

func (r xorRing) Seal(plaintext, ad []byte) ([]byte, error) { return r[0].Seal(plaintext, ad) }

func (r xorRing) Open(sealed, ad []byte) ([]byte, error) {
	for _, k := range r {
		if len(sealed) > 0 && sealed[0] == byte(k) {
			return k.Open(sealed, ad)
		}
	}
	return nil, errors.New("sealed under a key not held")
}

func (r xorRing) SealingKeyID() string { return fmt.Sprint(byte(r[0])) }

func (r xorRing) SealedKeyID(sealed []byte) string {
	if len(sealed) == 0 {
		return ""
	}
	return fmt.Sprint(sealed[0])
}

// A keyring passes the key check if any of its keys sealed it.
func TestSealedSecrets_CheckKeyRing(t *testing.T) {
	s, repo := newTestSecretService(xorSealer(7))
	if err := s.CheckKey(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		ring xorRing
		ok   bool
	}{
		{"NewFirst", xorRing{9, 7}, true},
		{"OldFirst", xorRing{7, 9}, true},
		{"ErrOldMissing", xorRing{9, 8}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := newSealedService(repo, nil, tt.ring, nil).CheckKey(t.Context())
			if (err == nil) != tt.ok {
				t.Errorf("CheckKey = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

// RotateKey with a keyring rewraps only what is under an older key, and
// reports the keys in use after: the new one only.
func TestSealedSecrets_RotateKeyRing(t *testing.T) {
	old, repo := newTestSecretService(xorSealer(7))
	op := operatorContext(t)
	if err := old.CheckKey(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"A": "a", "B": "bb", "C": "ccc"}
	for _, n := range []string{"A", "B"} {
		if _, err := old.Set(op, SecretInput{ProjectID: "pay", Name: n, Value: want[n]}); err != nil {
			t.Fatal(err)
		}
	}
	// A server that took the ring [9, 7] seals under 9 and opens both.
	ring := xorRing{9, 7}
	both := newSealedService(repo, newProjectRepo(&Project{ID: "pay", Status: ProjectRunning}), ring, nil)
	if _, err := both.Set(op, SecretInput{ProjectID: "pay", Name: "C", Value: want["C"]}); err != nil {
		t.Fatal(err)
	}
	if got, err := both.Open(t.Context(), "pay"); err != nil || !maps.Equal(got.Env, want) {
		t.Fatalf("Open under both keys = %v, %v", got.Env, err)
	}

	r, err := both.RotateKey(t.Context(), ring)
	if err != nil || r.Rewrapped != 2 || r.Stored != 3 || !slices.Equal(r.KeyIDs, []string{"9"}) {
		t.Fatalf("RotateKey = %+v, %v; want 2 of 3 rewrapped, key 9 alone in use", r, err)
	}
	again, err := both.RotateKey(t.Context(), ring)
	if err != nil || again.Rewrapped != 0 || !slices.Equal(again.KeyIDs, []string{"9"}) {
		t.Errorf("RotateKey again = %+v, %v; want nothing rewrapped", again, err)
	}
	// The old key removed, everything opens.
	next := newSealedService(repo, nil, xorRing{9}, nil)
	if err := next.CheckKey(t.Context()); err != nil {
		t.Fatalf("the new key alone: %v", err)
	}
	if got, err := next.Open(t.Context(), "pay"); err != nil || !maps.Equal(got.Env, want) {
		t.Errorf("Open under the new key alone = %v, %v; want %v", got.Env, err, want)
	}
	if err := newSealedService(repo, nil, xorRing{7}, nil).CheckKey(t.Context()); err == nil {
		t.Error("the old key alone still passes the key check")
	}
}

// A command's environment is its project's secrets, opened as it starts,
// with its own env winning; a secret that does not open fails the command
// with a reason that names the secret, never a value.
func TestDispatcher_Secrets(t *testing.T) {
	secrets, _ := newTestSecretService(xorSealer(7))
	op := operatorContext(t)
	for n, v := range map[string]string{"TOKEN": "s3cr3t-value", "SHARED": "from-secret"} {
		if _, err := secrets.Set(op, SecretInput{ProjectID: "pay", Name: n, Value: v}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := secrets.Set(op, SecretInput{ProjectID: "pay", Name: "KEY_PEM", Value: "-----BEGIN-----\n", Delivery: SecretAsFile}); err != nil {
		t.Fatal(err)
	}
	e := newCommandEnv(t)
	e.projects = newProjectRepo(&Project{ID: "pay", Status: ProjectRunning}, &Project{ID: "web", Status: ProjectRunning})
	e.exec.program("ok", execScript{})
	withEnv := e.queue(t, &Command{ProjectID: "pay", Argv: []string{"ok", "a"}, Env: map[string]string{"SHARED": "from-command", "OWN": "1"}})
	cfg := testDispatcherConfig()
	cfg.Secrets = secrets.Open
	e.startDispatcher(t, cfg)
	if got := e.waitFinal(t, withEnv.ID); got.Status != CommandSucceeded {
		t.Fatalf("command %s: %s", got.Status, got.Reason)
	}
	other := e.queue(t, &Command{ProjectID: "web", Argv: []string{"ok", "b"}})
	e.waitFinal(t, other.ID)

	e.exec.mu.Lock()
	reqs := slices.Clone(e.exec.reqs)
	e.exec.mu.Unlock()
	if len(reqs) != 2 {
		t.Fatalf("%d runs", len(reqs))
	}
	if want := map[string]string{"TOKEN": "s3cr3t-value", "SHARED": "from-command", "OWN": "1"}; !maps.Equal(reqs[0].Env, want) {
		t.Errorf("pay's command env = %v, want %v", reqs[0].Env, want)
	}
	if want := map[string]string{"KEY_PEM": "-----BEGIN-----\n"}; !maps.Equal(reqs[0].SecretFiles, want) {
		t.Errorf("pay's command files = %v, want %v (and not in its env)", reqs[0].SecretFiles, want)
	}
	if len(reqs[1].Env) != 0 || len(reqs[1].SecretFiles) != 0 {
		t.Errorf("web's command got %v %v, want no secrets of pay", reqs[1].Env, reqs[1].SecretFiles)
	}
	if stored := e.repo.command(withEnv.ID); stored.Env["TOKEN"] != "" {
		t.Errorf("the stored command carries the secret: %v", stored.Env)
	}
}

func TestDispatcher_SecretsDoNotOpen(t *testing.T) {
	secrets, repo := newTestSecretService(xorSealer(7))
	if _, err := secrets.Set(operatorContext(t), SecretInput{ProjectID: "web", Name: "TOKEN", Value: "s3cr3t-value"}); err != nil {
		t.Fatal(err)
	}
	wrong := newSealedService(repo, nil, xorSealer(8), nil)
	e := newCommandEnv(t)
	e.exec.program("ok", execScript{})
	c := e.queue(t, &Command{ProjectID: "web", Argv: []string{"ok", "a"}})
	cfg := testDispatcherConfig()
	cfg.Secrets = wrong.Open
	e.startDispatcher(t, cfg)
	got := e.waitFinal(t, c.ID)
	if got.Status != CommandFailed || !strings.Contains(got.Reason, "secret TOKEN of project web does not open") ||
		strings.Contains(got.Reason, "s3cr3t") {
		t.Errorf("got %s %q", got.Status, got.Reason)
	}
	e.exec.mu.Lock()
	defer e.exec.mu.Unlock()
	if len(e.exec.reqs) != 0 {
		t.Error("the command ran without its secrets")
	}
}

// FuzzValidateSecretName checks that every name it accepts is a variable
// name the executors take, and never rdev's own.
func FuzzValidateSecretName(f *testing.F) {
	for _, s := range []string{"API_TOKEN", "_X", "1A", "RDEV_X", "PATH", "LD_PRELOAD", "a", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ValidateSecretName(name) != nil {
			return
		}
		if !envNamePattern.MatchString(name) || strings.HasPrefix(name, "RDEV_") || strings.HasPrefix(strings.ToLower(name), "_rdev_") {
			t.Fatalf("accepted %q", name)
		}
	})
}

// A command whose secrets cannot be read because storage is away (a
// restart, a failover) waits for it and then runs: an outage never fails
// it.
func TestDispatcher_SecretsWaitForStorage(t *testing.T) {
	secrets, _ := newTestSecretService(xorSealer(7))
	if _, err := secrets.Set(operatorContext(t), SecretInput{ProjectID: "web", Name: "TOKEN", Value: "s3cr3t-value"}); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	e := newCommandEnv(t)
	e.exec.program("ok", execScript{})
	c := e.queue(t, &Command{ProjectID: "web", Argv: []string{"ok", "a"}})
	cfg := testDispatcherConfig()
	cfg.Secrets = func(ctx context.Context, project string) (ExecSecrets, error) {
		if calls.Add(1) <= 3 {
			return ExecSecrets{}, Errorf(EUNAVAILABLE, "the database is unavailable")
		}
		return secrets.Open(ctx, project)
	}
	e.startDispatcher(t, cfg)
	got := e.waitFinal(t, c.ID)
	if got.Status != CommandSucceeded {
		t.Fatalf("command %s: %q, want SUCCEEDED once storage is back", got.Status, got.Reason)
	}
	if n := calls.Load(); n != 4 {
		t.Errorf("secrets read %d times, want 4 (three outages, then the answer)", n)
	}
	e.exec.mu.Lock()
	defer e.exec.mu.Unlock()
	if len(e.exec.reqs) != 1 || e.exec.reqs[0].Env["TOKEN"] != "s3cr3t-value" {
		t.Errorf("runs %v, want one with the secret", e.exec.reqs)
	}
}
