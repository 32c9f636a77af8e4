package storetest

import (
	"encoding/base64"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rdev-hq/rdev/domain"
)

// CommandEnvSealingStore is a store of commands and sealed secrets.
type CommandEnvSealingStore interface {
	domain.CommandRepository
	domain.SecretRepository
}

// TestCommandEnvRewrap checks that RewrapSecrets rewraps the sealed env
// values of queued commands (domain.SealedTextPrefix), bound to the
// command and the variable, and leaves values in clear and the commands
// that have started alone. newStore returns a fresh, empty store.
func TestCommandEnvRewrap(t *testing.T, newStore func(t *testing.T) CommandEnvSealingStore) {
	s := newStore(t)
	ctx := t.Context()
	sealed := func(v string) string { return domain.SealedTextPrefix + base64.StdEncoding.EncodeToString([]byte(v)) }
	// The older command is claimed, so it starts; the other stays queued.
	started := newCommand("pay", 1)
	started.Env = map[string]string{"GONE": sealed("old-gone")}
	queued := newCommand("pay", 2)
	queued.Env = map[string]string{"TOKEN": sealed("old-token"), "PLAIN": "in clear"}
	mustCreateCommand(t, ctx, s, started)
	mustCreateCommand(t, ctx, s, queued)
	claimed, err := s.ClaimCommands(ctx, domain.ClaimRequest{Owner: "o", Max: 1, LeaseUntil: at(commandBase.Add(time.Hour)), Now: at(commandBase)})
	if err != nil || len(claimed) != 1 || claimed[0].ID != started.ID {
		t.Fatalf("claim = %v, %v; want %s", claimed, err, started.ID)
	}
	var ads []string
	n, err := s.RewrapSecrets(ctx, func(v, ad []byte) ([]byte, error) {
		ads = append(ads, string(ad))
		return append([]byte("new-"), v...), nil
	}, []byte("check"))
	if err != nil || n != 1 {
		t.Fatalf("RewrapSecrets = %d, %v; want 1 (the queued command's one sealed value)", n, err)
	}
	if diff := cmp.Diff([]string{string(domain.CommandEnvAD(queued.ID, "TOKEN"))}, ads); diff != "" {
		t.Errorf("associated data (-want +got):\n%s", diff)
	}
	got, err := s.FindCommandByID(ctx, queued.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"TOKEN": sealed("new-old-token"), "PLAIN": "in clear"}, got.Env); diff != "" {
		t.Errorf("queued command's env (-want +got):\n%s", diff)
	}
	if got, err := s.FindCommandByID(ctx, started.ID); err != nil || len(got.Env) != 1 || got.Env["GONE"] != "" {
		t.Errorf("started command's env = %v, %v; want names only", got.Env, err)
	}
}
