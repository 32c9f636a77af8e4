package domain

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func newTestWebhookService(allowHTTP bool) (*WebhookService, *webhookRepo, *clock) {
	repo, clk := newWebhookRepo(), newClock()
	s := NewWebhookService(repo, NewAuditService(repo.audit, nil), allowHTTP)
	s.now = clk.Now
	return s, repo, clk
}

func mustCreateWebhook(tb testing.TB, s *WebhookService, in CreateWebhook) (*Webhook, string) {
	tb.Helper()
	w, secret, err := s.Create(operatorContext(tb), in)
	if err != nil {
		tb.Fatalf("Create(%+v): %v", in, err)
	}
	return w, secret
}

func TestWebhookService_Create(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		s, repo, clk := newTestWebhookService(false)
		key := &APIKey{ID: NewID(clk.Now()), Scopes: Scopes{ScopeWebhooksWrite}}
		w, secret, err := s.Create(keyContext(t, key), CreateWebhook{
			URL:         "https://hooks.example.com/rdev?token=hush",
			Events:      []string{EventKeyRevoked, EventCommandFinished, EventKeyRevoked},
			Description: "CI ✓",
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeWebhookSecret(secret); err != nil || secret != w.Secret {
			t.Errorf("secret %q: %v (stored %q)", secret, err, w.Secret)
		}
		now := clk.Now().UTC().Truncate(time.Microsecond)
		want := &Webhook{
			ID: w.ID, URL: "https://hooks.example.com/rdev?token=hush", Description: "CI ✓",
			Events: []string{EventCommandFinished, EventKeyRevoked}, Secret: secret, Enabled: true,
			CreatedBy: key.ID, CreatedAt: now, UpdatedAt: now,
		}
		if !reflect.DeepEqual(w, want) {
			t.Errorf("Create = %+v\nwant     %+v", w, want)
		}
		if stored, _ := repo.FindWebhookByID(t.Context(), w.ID); !reflect.DeepEqual(stored, want) {
			t.Errorf("stored %+v\nwant   %+v", stored, want)
		}
		es := repo.audit.all()
		if len(es) != 1 || es[0].Action != AuditWebhookCreate || es[0].Target != w.ID || es[0].Outcome != AuditSuccess {
			t.Fatalf("audit log = %+v, want one successful webhook.create of %s", es, w.ID)
		}
		if got := es[0].Details["url"]; got != "https://hooks.example.com/rdev?"+Redacted {
			t.Errorf("audited url = %q, want the query redacted", got)
		}
		for k, v := range es[0].Details {
			if strings.Contains(v, secret[len(WebhookSecretPrefix):]) || strings.Contains(v, "hush") {
				t.Errorf("audit detail %s = %q shows a secret", k, v)
			}
		}
	})

	t.Run("AllowHTTP", func(t *testing.T) {
		s, _, _ := newTestWebhookService(true)
		w, _ := mustCreateWebhook(t, s, CreateWebhook{URL: "http://127.0.0.1:8080/hook", Events: []string{EventCommandQueued}})
		if w.URL != "http://127.0.0.1:8080/hook" {
			t.Errorf("URL = %q", w.URL)
		}
	})

	t.Run("ErrInvalid", func(t *testing.T) {
		for name, in := range map[string]CreateWebhook{
			"http":              {URL: "http://hooks.example.com/", Events: []string{EventCommandQueued}},
			"ftp":               {URL: "ftp://hooks.example.com/", Events: []string{EventCommandQueued}},
			"userinfo":          {URL: "https://u:p@hooks.example.com/", Events: []string{EventCommandQueued}},
			"relative":          {URL: "/hook", Events: []string{EventCommandQueued}},
			"no events":         {URL: "https://hooks.example.com/"},
			"unknown event":     {URL: "https://hooks.example.com/", Events: []string{"command.exploded"}},
			"ping":              {URL: "https://hooks.example.com/", Events: []string{EventPing}},
			"long description":  {URL: "https://hooks.example.com/", Events: []string{EventCommandQueued}, Description: strings.Repeat("x", MaxWebhookDescriptionLength+1)},
			"control character": {URL: "https://hooks.example.com/", Events: []string{EventCommandQueued}, Description: "a\x00b"},
		} {
			t.Run(name, func(t *testing.T) {
				s, repo, _ := newTestWebhookService(false)
				_, _, err := s.Create(operatorContext(t), in)
				wantCode(t, err, EINVALID)
				if ws, _ := repo.FindWebhooks(t.Context(), WebhookFilter{}); len(ws) != 0 {
					t.Errorf("stored %d webhooks", len(ws))
				}
				if es := repo.audit.all(); len(es) != 1 || es[0].Outcome != AuditFailed || es[0].ErrorCode != EINVALID {
					t.Errorf("audit log = %+v, want one failed entry", es)
				}
			})
		}
	})

	t.Run("ErrForbidden", func(t *testing.T) {
		s, repo, clk := newTestWebhookService(false)
		key := &APIKey{ID: NewID(clk.Now()), Scopes: Scopes{ScopeWebhooksRead}}
		_, _, err := s.Create(keyContext(t, key), CreateWebhook{URL: "https://hooks.example.com/", Events: []string{EventCommandQueued}})
		wantCode(t, err, EFORBIDDEN)
		if es := repo.audit.all(); len(es) != 1 || es[0].Outcome != AuditDenied {
			t.Errorf("audit log = %+v, want one denied entry", es)
		}
	})
}

func TestWebhookService_Update(t *testing.T) {
	s, repo, clk := newTestWebhookService(false)
	w, _ := mustCreateWebhook(t, s, CreateWebhook{URL: "https://a.example.com/", Events: []string{EventCommandQueued}})
	ctx := operatorContext(t)

	clk.Advance(time.Minute)
	got, err := s.Update(ctx, w.ID, UpdateWebhook{
		URL: ptr("https://b.example.com/x"), Events: []string{EventCommandFailed}, Description: ptr("new"), Enabled: ptr(false),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.URL != "https://b.example.com/x" || !reflect.DeepEqual(got.Events, []string{EventCommandFailed}) ||
		got.Description != "new" || got.Enabled || got.DisabledReason != WebhookDisabledByUser || !got.UpdatedAt.Equal(clk.Now()) {
		t.Errorf("Update = %+v", got)
	}

	// Re-enabling clears the reason and the failure count; nil fields stay.
	if _, err := repo.UpdateWebhook(t.Context(), w.ID, func(w *Webhook) error { w.ConsecutiveFailures = 9; return nil }, nil); err != nil {
		t.Fatal(err)
	}
	got, err = s.Update(ctx, w.ID, UpdateWebhook{Enabled: ptr(true)})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Enabled || got.DisabledReason != "" || got.ConsecutiveFailures != 0 || got.URL != "https://b.example.com/x" || got.Description != "new" {
		t.Errorf("Update(enabled) = %+v", got)
	}

	_, err = s.Update(ctx, w.ID, UpdateWebhook{Events: []string{}})
	wantCode(t, err, EINVALID)
	_, err = s.Update(ctx, w.ID, UpdateWebhook{URL: ptr("http://b.example.com/")})
	wantCode(t, err, EINVALID)
	_, err = s.Update(ctx, "nope", UpdateWebhook{})
	wantCode(t, err, ENOTFOUND)
	_, err = s.Update(ctx, NewID(clk.Now()), UpdateWebhook{})
	wantCode(t, err, ENOTFOUND)

	var actions []string
	for _, e := range repo.audit.all() {
		actions = append(actions, e.Action+":"+string(e.Outcome))
	}
	want := []string{"webhook.create:success", "webhook.update:success", "webhook.update:success",
		"webhook.update:failed", "webhook.update:failed", "webhook.update:failed", "webhook.update:failed"}
	if !reflect.DeepEqual(actions, want) {
		t.Errorf("audit log = %v\nwant        %v", actions, want)
	}
}

func TestWebhookService_RotateSecret(t *testing.T) {
	t.Run("Grace", func(t *testing.T) {
		s, _, clk := newTestWebhookService(false)
		w, old := mustCreateWebhook(t, s, CreateWebhook{URL: "https://a.example.com/", Events: []string{EventCommandQueued}})
		got, secret, err := s.RotateSecret(operatorContext(t), w.ID, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if secret == old || secret != got.Secret || got.PreviousSecret != old {
			t.Fatalf("RotateSecret: secret %q, stored %q, previous %q; old %q", secret, got.Secret, got.PreviousSecret, old)
		}
		if s := got.Secrets(clk.Now().Add(59 * time.Minute)); !reflect.DeepEqual(s, []string{secret, old}) {
			t.Errorf("Secrets during the grace period = %v, want new and old", s)
		}
		if s := got.Secrets(clk.Now().Add(time.Hour)); !reflect.DeepEqual(s, []string{secret}) {
			t.Errorf("Secrets after the grace period = %v, want only the new", s)
		}
	})

	t.Run("NoGrace", func(t *testing.T) {
		s, _, clk := newTestWebhookService(false)
		w, _ := mustCreateWebhook(t, s, CreateWebhook{URL: "https://a.example.com/", Events: []string{EventCommandQueued}})
		if _, _, err := s.RotateSecret(operatorContext(t), w.ID, time.Hour); err != nil {
			t.Fatal(err)
		}
		got, secret, err := s.RotateSecret(operatorContext(t), w.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got.PreviousSecret != "" || got.PreviousSecretExpiresAt != nil || !reflect.DeepEqual(got.Secrets(clk.Now()), []string{secret}) {
			t.Errorf("RotateSecret(0) = %+v, want no previous secret", got)
		}
	})

	t.Run("ErrInvalid", func(t *testing.T) {
		s, repo, _ := newTestWebhookService(false)
		w, old := mustCreateWebhook(t, s, CreateWebhook{URL: "https://a.example.com/", Events: []string{EventCommandQueued}})
		for _, g := range []time.Duration{-time.Second, MaxWebhookSecretGrace + time.Second} {
			_, _, err := s.RotateSecret(operatorContext(t), w.ID, g)
			wantCode(t, err, EINVALID)
		}
		if stored, _ := repo.FindWebhookByID(t.Context(), w.ID); stored.Secret != old {
			t.Error("a refused rotation changed the secret")
		}
	})
}

func TestWebhookService_Delete(t *testing.T) {
	s, repo, _ := newTestWebhookService(false)
	w, _ := mustCreateWebhook(t, s, CreateWebhook{URL: "https://a.example.com/", Events: []string{EventCommandQueued}})
	ctx := operatorContext(t)
	if err := s.Delete(ctx, w.ID); err != nil {
		t.Fatal(err)
	}
	_, err := s.Get(ctx, w.ID)
	wantCode(t, err, ENOTFOUND)
	wantCode(t, s.Delete(ctx, w.ID), ENOTFOUND)
	es := repo.audit.all()
	if len(es) != 3 || es[1].Action != AuditWebhookDelete || es[1].Outcome != AuditSuccess || es[2].Outcome != AuditFailed {
		t.Errorf("audit log = %+v", es)
	}
}

func TestWebhookService_TestAndRedeliver(t *testing.T) {
	s, repo, clk := newTestWebhookService(false)
	w, _ := mustCreateWebhook(t, s, CreateWebhook{URL: "https://a.example.com/", Events: []string{EventCommandQueued}})
	ctx := operatorContext(t)

	ping, err := s.Test(ctx, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Type      string
		Timestamp string
		Data      map[string]string
	}
	if err := json.Unmarshal(ping.Body, &body); err != nil {
		t.Fatalf("ping body %s: %v", ping.Body, err)
	}
	if body.Type != EventPing || body.Data["webhookId"] != w.ID || body.Timestamp != "2025-03-14T15:09:26.535897Z" {
		t.Errorf("ping body = %s", ping.Body)
	}
	if ping.Status != WebhookPending || ping.NextAttemptAt == nil || !ping.NextAttemptAt.Equal(clk.Now()) ||
		ping.MessageID != WebhookMessagePrefix+ping.ID {
		t.Errorf("ping delivery = %+v, want pending, due now, message ID from its ID", ping)
	}

	clk.Advance(time.Hour)
	again, err := s.Redeliver(ctx, ping.ID)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID == ping.ID || again.MessageID != ping.MessageID || string(again.Body) != string(ping.Body) ||
		!again.EventAt.Equal(ping.EventAt) || !again.NextAttemptAt.Equal(clk.Now()) {
		t.Errorf("Redeliver = %+v\nof          %+v", again, ping)
	}

	page, err := s.Deliveries(ctx, w.ID, PageRequest{First: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Items[0].ID != again.ID || !page.HasNextPage {
		t.Errorf("first page = %+v, want the redelivery and more", page)
	}
	page, err = s.Deliveries(ctx, w.ID, PageRequest{First: 1, After: again.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Items[0].ID != ping.ID || page.HasNextPage {
		t.Errorf("second page = %+v, want the ping alone", page)
	}
	_, err = s.Deliveries(ctx, w.ID, PageRequest{First: 1, After: "not an id"})
	wantCode(t, err, EINVALID)

	_, err = s.Redeliver(ctx, NewID(clk.Now()))
	wantCode(t, err, ENOTFOUND)
	if _, err := s.Update(ctx, w.ID, UpdateWebhook{Enabled: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	_, err = s.Test(ctx, w.ID)
	wantCode(t, err, ECONFLICT)
	_, err = s.Redeliver(ctx, ping.ID)
	wantCode(t, err, ECONFLICT)
	reader := &APIKey{ID: NewID(clk.Now()), Scopes: Scopes{ScopeWebhooksRead}}
	_, err = s.Test(keyContext(t, reader), w.ID)
	wantCode(t, err, EFORBIDDEN)
	if _, err := s.Deliveries(keyContext(t, reader), w.ID, PageRequest{First: 5}); err != nil {
		t.Errorf("Deliveries with webhooks:read: %v", err)
	}
	if n := len(repo.deliveries); n != 2 {
		t.Errorf("%d deliveries stored, want 2", n)
	}
}

func TestWebhookDeliveries(t *testing.T) {
	clk := newClock()
	on := &Webhook{ID: "a", Enabled: true, Events: []string{EventCommandFinished, EventCommandQueued}}
	off := &Webhook{ID: "b", Events: []string{EventCommandQueued}}
	other := &Webhook{ID: "c", Enabled: true, Events: []string{EventKeyRevoked}}
	c := &Command{ID: "cmd", ProjectID: "p", KeyID: "k", Status: CommandQueued, CreatedAt: clk.Now()}
	ds := WebhookDeliveries(CommandEvent(c), []*Webhook{on, off, other}, nil)
	if len(ds) != 1 || ds[0].WebhookID != "a" || ds[0].EventType != EventCommandQueued {
		t.Fatalf("deliveries = %+v, want one to the enabled subscriber", ds)
	}
	var msg struct {
		Type      string
		Timestamp string
		Data      CommandEventData
	}
	if err := json.Unmarshal(ds[0].Body, &msg); err != nil {
		t.Fatal(err)
	}
	if msg.Type != EventCommandQueued || msg.Data.ID != "cmd" || msg.Data.ProjectID != "p" || msg.Data.Status != "QUEUED" ||
		msg.Timestamp != "2025-03-14T15:09:26.535897Z" || !ds[0].EventAt.Equal(clk.Now()) {
		t.Errorf("body = %s, event at %v", ds[0].Body, ds[0].EventAt)
	}

	// The event is timed by the change it reports.
	started, finished := clk.Now().Add(time.Second), clk.Now().Add(time.Minute)
	c.Status, c.StartedAt = CommandRunning, &started
	if e := CommandEvent(c); !e.At.Equal(started) {
		t.Errorf("command.started at %v, want %v", e.At, started)
	}
	c.Status, c.FinishedAt = CommandSucceeded, &finished
	if e := CommandEvent(c); !e.At.Equal(finished) || e.Type != EventCommandFinished {
		t.Errorf("%s at %v, want command.finished at %v", e.Type, e.At, finished)
	}

	for status, want := range map[CommandStatus]string{
		CommandQueued: EventCommandQueued, CommandRunning: EventCommandStarted, CommandSucceeded: EventCommandFinished,
		CommandFailed: EventCommandFailed, CommandCancelled: EventCommandFailed, CommandTimedOut: EventCommandFailed,
		CommandInterrupted: EventCommandFailed,
	} {
		if got := CommandEvent(&Command{Status: status}).Type; got != want {
			t.Errorf("CommandEvent(%s) = %s, want %s", status, got, want)
		}
	}
}

func FuzzParseWebhookEvents(f *testing.F) {
	for _, s := range []string{"command.queued", "command.failed,command.failed", "key.revoked,", "webhook.ping", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, joined string) {
		names := strings.Split(joined, ",")
		got, err := ParseWebhookEvents(names)
		if err != nil {
			wantInvalid(t, err, "events: ")
			return
		}
		if len(got) == 0 || !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Fatalf("ParseWebhookEvents(%q) = %v, want sorted, unique and not empty", names, got)
		}
		for _, n := range names {
			if !slices.Contains(WebhookEvents, n) || !slices.Contains(got, n) {
				t.Fatalf("ParseWebhookEvents(%q) accepted %q or dropped it", names, n)
			}
		}
	})
}

func FuzzValidateWebhookDescription(f *testing.F) {
	for _, s := range []string{"", "CI ✓", "a\x00b", "tab\there", strings.Repeat("é", MaxWebhookDescriptionLength)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, d string) {
		if err := validateWebhookDescription(d); err != nil {
			wantInvalid(t, err, "description: ")
			return
		}
		if !utf8.ValidString(d) || utf8.RuneCountInString(d) > MaxWebhookDescriptionLength {
			t.Fatalf("accepted %q", d)
		}
	})
}
