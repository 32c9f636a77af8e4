package kube

import (
	"bytes"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/domain"
)

// awkward are values the framing must carry exactly.
var awkward = []string{"", " lead and trail ", "two\nlines", "trailing newline\n", "\n\n", `back\slash`, `\n`, `\\`,
	`\c stops printf %b`, `%s %b %%`, "-n", "tab\there", "\r\n", "ünïcødé €", `$(touch injected)`, "'\"", "l", "e", "ex", "3"}

// TestWrapperEnv_ReadsTheBlockAndLeavesTheRest runs wrapperEnv under sh
// with an env block on stdin: the variables arrive exactly, before argv
// (not yet exported), and the bytes after the block are left on stdin.
func TestWrapperEnv_ReadsTheBlockAndLeavesTheRest(t *testing.T) {
	env := map[string]string{}
	for i, v := range awkward {
		env["V"+itoa(i)] = v
	}
	files := map[string]string{"F_A": awkward[3], "F_B": awkward[7]}
	block := envBlock(domain.ExecRequest{Env: env, SecretFiles: files})
	const rest = "rest of stdin\nl1\n\x00binary\\n"
	script := `_rdev_noenv() { exit 9; }
` + wrapperGet + wrapperEnv + `[ -z "${V0+set}" ] || exit 8
printf '%s\0' "$_rdev_f" "$_rdev_root" "$_rdev_wd" "$_rdev_n" "$_rdev_nf" "$@"
printf '%s' --; cat`
	run := func(stdin []byte) ([]byte, error) {
		c := exec.CommandContext(t.Context(), "/bin/sh", "-c", script, "rdev", "pf", "root", "wd", "argv0", "argv 1")
		c.Stdin = bytes.NewReader(stdin)
		c.WaitDelay = 10 * time.Second
		return c.Output()
	}
	out, err := run(append(slices.Clone(block), rest...))
	if err != nil {
		t.Fatalf("wrapperEnv: %v", err)
	}
	fields, tail, ok := bytes.Cut(out, []byte("\x00--"))
	if !ok {
		t.Fatalf("output %q has no end of the parameters", out)
	}
	got := strings.Split(string(fields), "\x00")
	// wrapperEnv puts each value before the ones read earlier: the files'
	// (read last, by name) first, value before name.
	want := []string{"pf", "root", "wd", itoa(len(env)), "4", awkward[7], "F_B", awkward[3], "F_A"}
	const vars = 9
	for i := len(awkward) - 1; i >= 0; i-- {
		want = append(want, "V"+itoa(i)+"="+awkward[i])
	}
	slices.SortFunc(want[vars:], strings.Compare)
	if len(got) > vars+2 {
		slices.SortFunc(got[vars:len(got)-2], strings.Compare)
	}
	want = append(want, "argv0", "argv 1")
	if !slices.Equal(got, want) {
		t.Errorf("parameters after wrapperEnv:\n got %q\nwant %q", got, want)
	}
	if string(tail) != rest {
		t.Errorf("stdin after the block = %q, want %q", tail, rest)
	}

	t.Run("ErrTruncated", func(t *testing.T) {
		for _, n := range []int{0, 2, len(block) - 1} {
			_, err := run(block[:n])
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 9 {
				t.Errorf("block cut at %d of %d bytes: %v, want _rdev_noenv (exit 9)", n, len(block), err)
			}
		}
	})
}

// TestExecutor_EnvNotInExecURL: a variable's value reaches the command but
// no exec request's URI (which API server audit logs record at Metadata
// level), on an exec of its own, over a warm stream, and on the exec of
// its own that a request too large for a warm stream gets.
func TestExecutor_EnvNotInExecURL(t *testing.T) {
	const secret = "Zq7ExecURLSecret"
	for _, tt := range []struct {
		name string
		warm bool
		pad  int
	}{{"Cold", false, 0}, {"Warm", true, 0}, {"WarmTooLarge", true, maxWarmRequest}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var (
				ep   *execEndpoint
				ex   *Executor
				proj *domain.Project
			)
			if tt.warm {
				ep, ex, proj, _ = newWarmExecutor(t)
			} else {
				ep = newExecEndpoint(t, time.Hour)
				ex, proj, _ = newHarnessExecutor(t, ep, WithWarmIdle(0))
			}
			value := secret + "/" + strings.Repeat("p", tt.pad) + "&x=1 \n'\""
			req := shReq(proj, `printf %s "$RDEV_SECRET"`, "marker-url")
			req.Env = map[string]string{"RDEV_SECRET": value, "OTHER": secret}
			req.SecretFiles = map[string]string{"TOKEN_FILE": secret + "-file"}
			req.Argv[2] = `[ "$(cat "$RDEV_SECRETS_DIR/TOKEN_FILE")" = "$OTHER-file" ] || exit 3; ` + req.Argv[2]
			res, out, _, err := runHarness(t, t.Context(), ex, req)
			if err != nil || res.ExitCode != 0 || out != value {
				t.Fatalf("Exec = %+v, %v, stdout %d bytes (want the value, %d bytes)", res, err, len(out), len(value))
			}
			if cold := ranCold(ep, "marker-url"); cold != (!tt.warm || tt.pad > 0) {
				t.Errorf("the command had an exec of its own: %v, want %v", cold, !tt.warm || tt.pad > 0)
			}
			// The argv is in the URI, as it should be found if a value were.
			if cold := ranCold(ep, "marker-url"); cold && !slices.ContainsFunc(ep.requestURIs(), func(u string) bool { return uriHolds(u, "marker-url") }) {
				t.Error("no exec request's URI holds the command's argv: the check cannot see what an exec request holds")
			}
			for _, u := range ep.requestURIs() {
				if uriHolds(u, secret) {
					t.Errorf("an exec request's URI holds the value: %.300s", u)
				}
			}
		})
	}
}

// uriHolds reports whether uri holds s, as given or unescaped.
func uriHolds(uri, s string) bool {
	u, err := url.QueryUnescape(uri)
	return strings.Contains(uri, s) || err == nil && strings.Contains(u, s)
}
