package domain

import (
	"errors"
	"net"
	"path"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// wantInvalid fails unless err is an EINVALID domain error whose message
// starts with field, as every validation error must: the field, then the rule.
func wantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	var derr *Error
	if !errors.As(err, &derr) || derr.Code != EINVALID {
		t.Fatalf("error %v (%T): want a domain error with code %s", err, err, EINVALID)
	}
	if !strings.HasPrefix(derr.Message, field) {
		t.Fatalf("message %q does not start with the field %q", derr.Message, field)
	}
	if !utf8.ValidString(derr.Message) {
		t.Fatalf("message %q is not valid UTF-8", derr.Message)
	}
}

func TestParseWebhookURL(t *testing.T) {
	for _, tc := range []struct {
		raw       string
		allowHTTP bool
		ok        bool
	}{
		{"https://hooks.example.com/rdev", false, true},
		{"https://hooks.example.com:8443/a/b?x=1", false, true},
		{"https://192.0.2.10/hook", false, true},
		{"https://[2001:db8::1]:443/hook", false, true},
		{"http://localhost:8080/hook", true, true},
		{"http://localhost:8080/hook", false, false},
		{"ftp://example.com/", true, false},
		{"javascript:alert(1)", true, false},
		{"//example.com/hook", false, false},
		{"/relative", false, false},
		{"https://user:pass@example.com/", false, false},
		{"https://example.com/#frag", false, false},
		{"https://example.com:0/", false, false},
		{"https://example.com:99999/", false, false},
		{"https://exa mple.com/", false, false},
		{"https://-bad-.example.com/", false, false},
		{"https://ex_ample.com/", false, false},
		{"https:///path", false, false},
		{"https://example.com/\x00", false, false},
		{"https://" + strings.Repeat("a", MaxWebhookURLBytes) + ".com/", false, false},
		{"", false, false},
	} {
		u, err := ParseWebhookURL(tc.raw, tc.allowHTTP)
		if tc.ok {
			if err != nil {
				t.Errorf("ParseWebhookURL(%q, %v): %v", tc.raw, tc.allowHTTP, err)
			} else if u.Host == "" {
				t.Errorf("ParseWebhookURL(%q) gave no host", tc.raw)
			}
			continue
		}
		if err == nil {
			t.Errorf("ParseWebhookURL(%q, %v) = %v, want an error", tc.raw, tc.allowHTTP, u)
			continue
		}
		wantInvalid(t, err, "url: ")
	}
}

func TestValidateLabelFilter(t *testing.T) {
	ok := []map[string]string{
		nil,
		{"team": "infra"},
		{"app.kubernetes.io/name": "web", "tier": ""},
		{"a": strings.Repeat("v", 63)},
		{"example.com/x_y.z": "A-b_c.9"},
	}
	for _, m := range ok {
		if err := ValidateLabelFilter(m); err != nil {
			t.Errorf("ValidateLabelFilter(%v): %v", m, err)
		}
	}
	bad := []map[string]string{
		{"": "x"},
		{"/name": "x"},
		{"Example.com/name": "x"},
		{"a/b/c": "x"},
		{"-lead": "x"},
		{"trail-": "x"},
		{strings.Repeat("k", 64): "x"},
		{"k": strings.Repeat("v", 64)},
		{"k": "-v"},
		{"k": "a b"},
		{"k": "é"},
	}
	many := map[string]string{}
	for i := range MaxLabelFilters + 1 {
		many[strings.Repeat("k", i+1)] = "v"
	}
	bad = append(bad, many)
	for _, m := range bad {
		err := ValidateLabelFilter(m)
		if err == nil {
			t.Errorf("ValidateLabelFilter(%v) accepted it", m)
			continue
		}
		wantInvalid(t, err, "filter.labels: ")
	}
}

func FuzzParseWebhookURL(f *testing.F) {
	for _, s := range []string{
		"https://hooks.example.com/rdev", "http://localhost:8080/x", "https://[::1]:1/", "https://u@h/",
		"https://h/#f", "mailto:a@b", "https://h:65536/", "https://xn--bcher-kva.example/", "",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, raw string, allowHTTP bool) {
		u, err := ParseWebhookURL(raw, allowHTTP)
		if err != nil {
			if u != nil {
				t.Fatalf("ParseWebhookURL(%q) returned %v with an error", raw, u)
			}
			wantInvalid(t, err, "url: ")
			return
		}
		if u.Scheme != "https" && (u.Scheme != "http" || !allowHTTP) {
			t.Fatalf("ParseWebhookURL(%q, %v) accepted scheme %q", raw, allowHTTP, u.Scheme)
		}
		if u.User != nil || u.Fragment != "" || u.Hostname() == "" || len(raw) > MaxWebhookURLBytes {
			t.Fatalf("ParseWebhookURL(%q) accepted %#v", raw, u)
		}
		if net.ParseIP(u.Hostname()) == nil && !validHostname(u.Hostname()) {
			t.Fatalf("ParseWebhookURL(%q) accepted host %q", raw, u.Hostname())
		}
	})
}

func FuzzValidateLabelFilter(f *testing.F) {
	for _, kv := range [][2]string{
		{"team", "infra"}, {"app.kubernetes.io/name", "web"}, {"k", ""}, {"/x", "y"}, {"K", "-"}, {"a/b/c", "d"},
	} {
		f.Add(kv[0], kv[1])
	}
	f.Fuzz(func(t *testing.T, k, v string) {
		err := ValidateLabelFilter(map[string]string{k: v})
		if err != nil {
			wantInvalid(t, err, "filter.labels: ")
			return
		}
		name := k
		if i := strings.LastIndex(k, "/"); i >= 0 {
			name = k[i+1:]
		}
		if strings.Count(k, "/") > 1 || name == "" || len(name) > 63 || len(v) > 63 {
			t.Fatalf("accepted %q=%q", k, v)
		}
		for _, s := range []string{k, v} {
			if strings.IndexFunc(s, func(r rune) bool { return r > unicode.MaxASCII || unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
				t.Fatalf("accepted %q=%q with a character outside the label alphabet", k, v)
			}
		}
	})
}

// FuzzCommandFrom drives every rule of an executeCommand input at once:
// whatever it accepts must be a command rdev can run as given.
func FuzzCommandFrom(f *testing.F) {
	f.Add("web", "echo", "hi", "", "", "HOME", "/tmp", "src", 30, "tok", 1)
	f.Add("web", "", "", "ls -la | wc -l", "", "", "", "", 0, "", 2)
	f.Add("web", "", "", "", "fix the failing test", "A_1", "x", "a/../b", 5, "", 3)
	f.Add("Bad_Project", "sh", "-c", "", "", "1BAD", "", "/abs", -1, "\x00", 9)
	f.Add("web", "", "", "", "\x1b[31mred", "", "", "../up", 999999, "t", 0)
	f.Fuzz(func(t *testing.T, project, prog, arg, shell, prompt, envName, envValue, workdir string, timeout int, token string, prio int) {
		in := ExecuteCommand{
			ProjectID: project, Shell: shell, Prompt: prompt, Workdir: workdir,
			Priority: Priority(prio), ClientToken: token, TimeoutSeconds: &timeout,
		}
		if prog != "" || arg != "" {
			in.Argv = []string{prog, arg}
		}
		if envName != "" {
			in.Env = []EnvVar{{Name: envName, Value: envValue}}
		}
		if timeout == 0 {
			in.TimeoutSeconds = nil
		}
		lim := DefaultCommandLimits
		c, err := commandFrom(in, lim)
		if err != nil {
			if c != nil {
				t.Fatalf("commandFrom returned %+v with an error", c)
			}
			var derr *Error
			if !errors.As(err, &derr) || derr.Code != EINVALID || !strings.Contains(derr.Message, ": ") {
				t.Fatalf("commandFrom: %v; want %s naming the field", err, EINVALID)
			}
			return
		}
		if ValidateProjectID(c.ProjectID) != nil || len(c.Argv) == 0 || c.Argv[0] == "" {
			t.Fatalf("accepted %+v", c)
		}
		for _, a := range c.Argv {
			if !utf8.ValidString(a) || strings.ContainsRune(a, 0) {
				t.Fatalf("accepted argv %q", c.Argv)
			}
		}
		if c.Type == CommandClaude && (c.Argv[len(c.Argv)-1] != prompt || c.Argv[len(c.Argv)-2] != "--" || hasControl(prompt)) {
			t.Fatalf("CLAUDE argv %q does not end with -- and the prompt as one element", c.Argv)
		}
		if c.Workdir != "" && (strings.HasPrefix(c.Workdir, "/") || c.Workdir != path.Clean(c.Workdir) ||
			c.Workdir == ".." || strings.HasPrefix(c.Workdir, "../")) {
			t.Fatalf("accepted workdir %q as %q", workdir, c.Workdir)
		}
		for k, v := range c.Env {
			if !envNamePattern.MatchString(k) || strings.ContainsRune(v, 0) {
				t.Fatalf("accepted env %q=%q", k, v)
			}
		}
		if c.Timeout <= 0 || c.Timeout > lim.MaxTimeout {
			t.Fatalf("accepted timeout %v", c.Timeout)
		}
		if _, ok := priorityNames[c.Priority]; !ok {
			t.Fatalf("accepted priority %d", c.Priority)
		}
	})
}

func FuzzValidatePrompt(f *testing.F) {
	for _, s := range []string{"fix the bug", "line\nline\ttab", "", "   ", "\x00", "\x1b]0;title\x07", "\xff", "--help"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		err := ValidatePrompt(p, 1024)
		if err != nil {
			wantInvalid(t, err, "prompt: ")
			return
		}
		if len(p) > 1024 || !utf8.ValidString(p) || hasControl(p) || strings.TrimSpace(p) == "" {
			t.Fatalf("accepted prompt %q", p)
		}
	})
}

func FuzzValidateKeyName(f *testing.F) {
	for _, s := range []string{"ci", "deploy bot", "", " ", "a\nb", "\u200b", strings.Repeat("x", MaxKeyNameLength+1)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := validateKeyName(name)
		if err != nil {
			wantInvalid(t, err, "name: ")
			return
		}
		if utf8.RuneCountInString(name) > MaxKeyNameLength || strings.IndexFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
			t.Fatalf("accepted key name %q", name)
		}
	})
}

func TestValidateKeyFields(t *testing.T) {
	now := time.Now()
	past, future := now.Add(-time.Second), now.Add(time.Hour)
	if err := validateExpiry(&future, now); err != nil {
		t.Error(err)
	}
	if err := validateExpiry(nil, now); err != nil {
		t.Error(err)
	}
	wantInvalid(t, validateExpiry(&past, now), "expiresAt: ")
	wantInvalid(t, validateKeyRateLimit(-1), "rateLimit: ")
	wantInvalid(t, validateKeyRateLimit(MaxKeyRateLimit+1), "rateLimit: ")
	if err := validateKeyRateLimit(MaxKeyRateLimit); err != nil {
		t.Error(err)
	}
	wantInvalid(t, validateRotationGrace(-time.Second), "gracePeriodSeconds: ")
	wantInvalid(t, validateRotationGrace(MaxRotationGrace+time.Second), "gracePeriodSeconds: ")
	wantInvalid(t, validatePageSize(MaxPageSize+1), "first: ")
	wantInvalid(t, validatePageSize(-1), "first: ")
	_, err := ParseScopes(make([]string, MaxKeyScopesEntries+1))
	wantInvalid(t, err, "scopes: ")
}
