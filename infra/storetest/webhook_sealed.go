package storetest

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/rdev-hq/rdev/domain"
)

// WebhookSealingStore is a webhook store that seals endpoints' signing
// secrets and rewraps them with projects' secrets.
type WebhookSealingStore interface {
	WebhookStore
	domain.SecretRepository
	SealWebhookSecretsWith(domain.SecretSealer)
	SealClearWebhookSecrets(ctx context.Context) (int, error)
	// DB is the store's database, read and changed under the store.
	DB() *bun.DB
}

// TestWebhookSealing checks that signing secrets never reach the database
// in clear once the store has a sealer (rdev issue 16), that a sealed one
// moved to another endpoint does not open, that secrets stored in clear
// before are sealed once, and that rewrapping includes them. newStore
// returns a fresh, empty store without a sealer; subtests run in parallel.
func TestWebhookSealing(t *testing.T, newStore func(t *testing.T) WebhookSealingStore) {
	t.Run("NeverInClear", func(t *testing.T) {
		t.Parallel()
		s, columns, w := sealedWebhook(t, newStore)
		ctx := t.Context()
		assertSealedColumns(t, ctx, columns, w)
		if got, err := s.FindWebhookByID(ctx, w.ID); err != nil || got.Secret != w.Secret || got.PreviousSecret != w.PreviousSecret {
			t.Fatalf("FindWebhookByID = %+v, %v; want the secrets opened", got, err)
		}
		next := domain.NewWebhookSecret()
		saved, err := s.UpdateWebhook(ctx, w.ID, func(w *domain.Webhook) error {
			w.PreviousSecret, w.Secret = w.Secret, next
			return nil
		}, nil)
		if err != nil || saved.Secret != next || saved.PreviousSecret != w.Secret {
			t.Fatalf("UpdateWebhook = %+v, %v", saved, err)
		}
		assertSealedColumns(t, ctx, columns, saved)
		// A change that leaves the secrets (a delivery's failure count)
		// leaves their columns.
		before, _, _ := columns(ctx, w.ID)
		if _, err := s.UpdateWebhook(ctx, w.ID, func(w *domain.Webhook) error { w.ConsecutiveFailures++; return nil }, nil); err != nil {
			t.Fatal(err)
		}
		if after, _, _ := columns(ctx, w.ID); after != before {
			t.Errorf("an update that kept the secret sealed it again: %q, was %q", after, before)
		}
		ws, err := s.FindWebhooks(ctx, domain.WebhookFilter{})
		if err != nil || len(ws) != 1 || ws[0].Secret != next {
			t.Fatalf("FindWebhooks = %v, %v", ws, err)
		}
	})

	t.Run("MovedDoesNotOpen", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		columns := secretColumns(s.DB())
		s.SealWebhookSecretsWith(gcmSealer(7))
		ctx := t.Context()
		a, b := newWebhook(), newWebhook()
		b.ID = idAt(time.Now().Add(time.Second))
		mustCreateWebhook(t, ctx, s, a)
		mustCreateWebhook(t, ctx, s, b)
		sealed, _, err := columns(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.DB().ExecContext(ctx, `UPDATE webhooks SET secret = ? WHERE id = ?`, sealed, b.ID); err != nil {
			t.Fatal(err)
		}
		if got, err := s.FindWebhookByID(ctx, b.ID); err == nil {
			t.Fatalf("a's sealed secret opened as b's: %q", got.Secret)
		}
	})

	t.Run("SealClear", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		columns := secretColumns(s.DB())
		ctx := t.Context()
		w := fullWebhook()
		mustCreateWebhook(t, ctx, s, w) // no sealer yet: in clear
		if secret, _, err := columns(ctx, w.ID); err != nil || secret != w.Secret {
			t.Fatalf("without a sealer the column is %q, %v; want the secret as it is", secret, err)
		}
		s.SealWebhookSecretsWith(gcmSealer(7))
		for i, want := range []int{1, 0} {
			if n, err := s.SealClearWebhookSecrets(ctx); err != nil || n != want {
				t.Fatalf("SealClearWebhookSecrets #%d = %d, %v; want %d", i+1, n, err, want)
			}
		}
		assertSealedColumns(t, ctx, columns, w)
		if got, err := s.FindWebhookByID(ctx, w.ID); err != nil || got.Secret != w.Secret || got.PreviousSecret != w.PreviousSecret {
			t.Fatalf("FindWebhookByID after sealing = %+v, %v", got, err)
		}
	})

	t.Run("Rewrap", func(t *testing.T) {
		t.Parallel()
		s, columns, w := sealedWebhook(t, newStore)
		ctx := t.Context()
		before, _, _ := columns(ctx, w.ID)
		n, err := s.RewrapSecrets(ctx, func(sealed, ad []byte) ([]byte, error) {
			v, err := gcmSealer(7).Open(sealed, ad)
			if err != nil {
				return nil, err
			}
			return gcmSealer(9).Seal(v, ad)
		}, []byte("check"))
		if err != nil || n != 2 {
			t.Fatalf("RewrapSecrets = %d, %v; want 2 (the secret and the previous one)", n, err)
		}
		after, _, _ := columns(ctx, w.ID)
		if after == before {
			t.Error("the sealed secret is unchanged by the rewrap")
		}
		if _, err := s.FindWebhookByID(ctx, w.ID); err == nil {
			t.Error("the secret still opens under the old key")
		}
		s.SealWebhookSecretsWith(gcmSealer(9))
		if got, err := s.FindWebhookByID(ctx, w.ID); err != nil || got.Secret != w.Secret {
			t.Fatalf("FindWebhookByID under the new key = %+v, %v", got, err)
		}
	})
}

// secretColumns reads an endpoint's signing secret columns as stored.
func secretColumns(db *bun.DB) func(ctx context.Context, id string) (secret, previous string, err error) {
	return func(ctx context.Context, id string) (secret, previous string, err error) {
		err = db.QueryRowContext(ctx, `SELECT secret, previous_secret FROM webhooks WHERE id = ?`, id).Scan(&secret, &previous)
		return secret, previous, err
	}
}

// sealedWebhook returns a fresh store sealing with gcmSealer(7), the
// reader of its columns, and a webhook created in it.
func sealedWebhook(t *testing.T, newStore func(t *testing.T) WebhookSealingStore) (WebhookSealingStore, func(context.Context, string) (string, string, error), *domain.Webhook) {
	t.Helper()
	s := newStore(t)
	s.SealWebhookSecretsWith(gcmSealer(7))
	w := fullWebhook()
	mustCreateWebhook(t, t.Context(), s, w)
	return s, secretColumns(s.DB()), w
}

func assertSealedColumns(tb testing.TB, ctx context.Context, columns func(context.Context, string) (string, string, error), w *domain.Webhook) {
	tb.Helper()
	secret, previous, err := columns(ctx, w.ID)
	if err != nil {
		tb.Fatal(err)
	}
	for _, c := range []struct{ column, clear string }{{secret, w.Secret}, {previous, w.PreviousSecret}} {
		if c.clear == "" {
			continue
		}
		if c.column == "" || strings.Contains(c.column, c.clear) || strings.Contains(c.column, strings.TrimPrefix(c.clear, domain.WebhookSecretPrefix)) {
			tb.Errorf("stored signing secret %q: want it sealed, not holding %q", c.column, c.clear)
		}
	}
}

// gcmSealer stands for infra/secretbox: AES-GCM under a key of one
// repeated byte, bound to the associated data, so that a wrong key or
// other associated data fails to open.
type gcmSealer byte

func (g gcmSealer) aead() cipher.AEAD {
	block, err := aes.NewCipher(bytes.Repeat([]byte{byte(g)}, 32))
	if err != nil {
		panic(err) // a 32-byte key always makes a cipher
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return aead
}

// Seal returns a fresh nonce and plaintext sealed with it.
func (g gcmSealer) Seal(plaintext, ad []byte) ([]byte, error) {
	nonce := make([]byte, 12)
	_, _ = rand.Read(nonce) // crypto/rand never fails on supported platforms.
	return g.aead().Seal(nonce, nonce, plaintext, ad), nil
}

// Open returns the plaintext of what Seal returned.
func (g gcmSealer) Open(sealed, ad []byte) ([]byte, error) {
	if len(sealed) < 12 {
		return nil, errors.New("does not open: too short")
	}
	return g.aead().Open(nil, sealed[:12], sealed[12:], ad)
}
