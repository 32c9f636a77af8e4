package domain

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"
)

func mustKeyring(tb testing.TB, keys ...string) *AuditKeyring {
	tb.Helper()
	var bs [][]byte
	for _, k := range keys {
		bs = append(bs, []byte(k))
	}
	kr, err := NewAuditKeyring(bs...)
	if err != nil {
		tb.Fatal(err)
	}
	return kr
}

func TestParseAuditKeyring(t *testing.T) {
	a, b := NewAuditKeyText(), NewAuditKeyText()
	kr, err := ParseAuditKeyring("# signs\n" + a + "\n\n  " + b + "  \n" + a + "\n")
	if err != nil {
		t.Fatal(err)
	}
	ka, _ := base64.StdEncoding.DecodeString(a)
	kb, _ := base64.StdEncoding.DecodeString(b)
	if ids := kr.KeyIDs(); len(ids) != 2 || ids[0] != AuditKeyID(ka) || ids[1] != AuditKeyID(kb) || kr.SigningKeyID() != ids[0] {
		t.Errorf("KeyIDs = %v, want %s first then %s", ids, AuditKeyID(ka), AuditKeyID(kb))
	}
	if id := AuditKeyID(ka); len(id) != 16 || strings.Contains(a, id) {
		t.Errorf("AuditKeyID = %q", id)
	}
	for text, want := range map[string]string{
		"":                    "holds no key",
		"# only a comment\n":  "holds no key",
		a + "\nnot base64!\n": "line 2: not a base64-encoded key",
		base64.StdEncoding.EncodeToString([]byte("short")): "line 1: the key is 5 bytes",
	} {
		if _, err := ParseAuditKeyring(text); ErrorCode(err) != EINVALID || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseAuditKeyring(%q) = %v, want EINVALID saying %q", text, err, want)
		}
	}
}

func TestAuditEntry_SealWith(t *testing.T) {
	kr := mustKeyring(t, strings.Repeat("k", 32))
	e := &AuditEntry{At: time.Date(2026, 12, 1, 9, 30, 0, 1500, time.UTC), Actor: "key1", Action: AuditKeyCreate, Outcome: AuditSuccess}
	e.SealWith(kr, 6, "abc")
	want := "13:rdev-audit-v2,16:" + kr.SigningKeyID() + ",3:abc,1:7,27:2026-12-01T09:30:00.000001Z,4:key1,0:,0:,0:,10:key.create,0:,7:success,0:,1:0,"
	if got := string(AuditCanonical("abc", e)); got != want {
		t.Errorf("AuditCanonical =\n%s\nwant\n%s", got, want)
	}
	m := hmac.New(sha256.New, []byte(strings.Repeat("k", 32)))
	m.Write([]byte(want))
	if e.Seq != 7 || e.PrevHash != "abc" || e.KeyID != kr.SigningKeyID() || e.Hash != hex.EncodeToString(m.Sum(nil)) {
		t.Errorf("sealed entry %+v, want seq 7 MACed with %s", e, kr.SigningKeyID())
	}
	unkeyed := *e
	unkeyed.SealWith(nil, 6, "abc")
	if unkeyed.KeyID != "" || unkeyed.Hash != AuditHash("abc", &unkeyed) || unkeyed.Hash == e.Hash {
		t.Errorf("unkeyed entry %+v, want its SHA-256", unkeyed)
	}
}

func TestAuditCheckpoint_Sign(t *testing.T) {
	kr := mustKeyring(t, strings.Repeat("k", 32), strings.Repeat("o", 32))
	at := time.Date(2026, 12, 1, 9, 30, 0, 1500, time.FixedZone("x", 3600))
	c := kr.SignCheckpoint(AuditHead{Seq: 9, Hash: "h9"}, at)
	if c.Seq != 9 || c.Hash != "h9" || !c.At.Equal(at.Truncate(time.Microsecond)) || c.KeyID != kr.SigningKeyID() || kr.checkCheckpoint(&c) != "" {
		t.Fatalf("checkpoint %+v does not verify", c)
	}
	old := mustKeyring(t, strings.Repeat("o", 32))
	if oc := old.SignCheckpoint(AuditHead{Seq: 9, Hash: "h9"}, at); kr.checkCheckpoint(&oc) != "" {
		t.Errorf("a checkpoint under an older key of the keyring does not verify")
	}
	for name, change := range map[string]func(c *AuditCheckpoint){
		"seq":  func(c *AuditCheckpoint) { c.Seq++ },
		"hash": func(c *AuditCheckpoint) { c.Hash = "h8" },
		"at":   func(c *AuditCheckpoint) { c.At = c.At.Add(time.Microsecond) },
		"mac":  func(c *AuditCheckpoint) { c.MAC = strings.Repeat("0", 64) },
	} {
		forged := c
		change(&forged)
		if why := kr.checkCheckpoint(&forged); !strings.Contains(why, "forged") {
			t.Errorf("checkpoint with its %s changed: %q, want it refused", name, why)
		}
	}
	forged := c
	forged.KeyID = "0000000000000000"
	if why := kr.checkCheckpoint(&forged); !strings.Contains(why, "does not hold") {
		t.Errorf("checkpoint under an unknown key: %q", why)
	}
}

func TestParseAuditCheckpoints(t *testing.T) {
	in := `{"seq":3,"hash":"h3","at":"2026-12-01T09:30:00.000001Z","keyId":"k","mac":"m3"}

{"time":"2026-12-01T09:31:00Z","level":"INFO","msg":"audit checkpoint","checkpoint":{"seq":5,"hash":"h5","at":"2026-12-01T09:31:00Z","keyId":"k","mac":"m5"}}
`
	cps, err := ParseAuditCheckpoints(strings.NewReader(in))
	if err != nil || len(cps) != 2 || cps[0].Seq != 3 || cps[0].MAC != "m3" || cps[1].Seq != 5 || cps[1].Hash != "h5" {
		t.Fatalf("ParseAuditCheckpoints = %+v, %v", cps, err)
	}
	for text, want := range map[string]string{
		"not json\n": "line 1: not a JSON checkpoint",
		`{"seq":3,"hash":"h3","at":"2026-12-01T09:30:00Z","keyId":"k","mac":"m"}` + "\n" + `{"msg":"rdev serving"}`: "line 2: not a checkpoint",
		`{"seq":0,"hash":"h","at":"2026-12-01T09:30:00Z","keyId":"k","mac":"m"}`:                                    "line 1: not a checkpoint",
	} {
		if _, err := ParseAuditCheckpoints(strings.NewReader(text)); ErrorCode(err) != EINVALID || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseAuditCheckpoints(%q) = %v, want EINVALID saying %q", text, err, want)
		}
	}
}

// failingSink fails while err is set.
type failingSink struct {
	err  error
	kept []AuditCheckpoint
}

func (s *failingSink) WriteAuditCheckpoint(_ context.Context, c AuditCheckpoint) error {
	if s.err != nil {
		return s.err
	}
	s.kept = append(s.kept, c)
	return nil
}

func TestAuditCheckpointer_Checkpoint(t *testing.T) {
	ctx := t.Context()
	log := newAuditLog()
	kr := mustKeyring(t, strings.Repeat("k", 32))
	good, bad := &failingSink{}, &failingSink{err: errors.New("disk full")}
	c := NewAuditCheckpointer(log, kr, good, bad)
	if _, ok, err := c.Checkpoint(ctx); ok || err != nil {
		t.Errorf("Checkpoint of an empty log = %v, %v; want nothing written", ok, err)
	}
	_ = log.add(&AuditEntry{Action: AuditKeyCreate, Outcome: AuditSuccess})
	cp, ok, err := c.Checkpoint(ctx)
	if !ok || !errors.Is(err, bad.err) || len(good.kept) != 1 || good.kept[0] != cp || cp.Seq != 1 || cp.Hash != log.all()[0].Hash {
		t.Fatalf("Checkpoint = %+v, %v, %v; kept %+v", cp, ok, err, good.kept)
	}
	bad.err = nil // a failed sink is given the same head again
	if _, ok, err := c.Checkpoint(ctx); !ok || err != nil || len(bad.kept) != 1 {
		t.Errorf("Checkpoint after the sink recovered = %v, %v; kept %d", ok, err, len(bad.kept))
	}
	if _, ok, _ := c.Checkpoint(ctx); ok {
		t.Error("Checkpoint of an unmoved head wrote one")
	}
}

// BenchmarkAuditEntry_Seal measures sealing one entry unkeyed (SHA-256) and
// keyed (HMAC-SHA-256).
func BenchmarkAuditEntry_Seal(b *testing.B) {
	for name, keys := range map[string]*AuditKeyring{"unkeyed": nil, "keyed": mustKeyring(b, strings.Repeat("k", 32))} {
		b.Run(name, func(b *testing.B) {
			e := &AuditEntry{At: time.Now(), Actor: "0000benchkey0000", Action: AuditCommandExecute, Target: "c1", Outcome: AuditSuccess,
				Details: map[string]string{"project": "web", "argv": `["make","test"]`, "env": `{"API_TOKEN":"[REDACTED]"}`}}
			b.ReportAllocs()
			for i := range b.N {
				e.SealWith(keys, int64(i), "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
			}
		})
	}
}
