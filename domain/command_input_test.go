package domain

import (
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestCommandFrom(t *testing.T) {
	lim := testLimits()
	lim.MaxArgs, lim.MaxArgvBytes = 4, 64
	lim.MaxEnvVars, lim.MaxEnvBytes = 3, 40
	lim.MaxShellBytes, lim.MaxPromptBytes = 32, 32
	lim.DefaultTimeout, lim.MaxTimeout = 10*time.Minute, time.Hour

	env := func(kv ...string) []EnvVar {
		var out []EnvVar
		for i := 0; i < len(kv); i += 2 {
			out = append(out, EnvVar{Name: kv[i], Value: kv[i+1]})
		}
		return out
	}
	argv := func(a ...string) ExecuteCommand {
		return ExecuteCommand{ProjectID: "web", Argv: a, Priority: PriorityNormal}
	}
	with := func(in ExecuteCommand, f func(*ExecuteCommand)) ExecuteCommand { f(&in); return in }
	ls := argv("ls", "-la")

	for _, tt := range []struct {
		name    string
		in      ExecuteCommand
		wantErr string // a substring of the message; "" for success
		check   func(t *testing.T, c *Command)
	}{
		{name: "OK", in: ls, check: func(t *testing.T, c *Command) {
			if c.Type != CommandExec || !slices.Equal(c.Argv, []string{"ls", "-la"}) || c.ProjectID != "web" ||
				c.Status != CommandQueued || c.Priority != PriorityNormal || c.Timeout != 10*time.Minute ||
				c.Workdir != "" || len(c.Env) != 0 || c.ClientToken != "" {
				t.Errorf("command = %+v", c)
			}
		}},
		{name: "OKExecTypeGiven", in: with(ls, func(in *ExecuteCommand) { in.Type = CommandExec }), check: func(t *testing.T, c *Command) {
			if c.Type != CommandExec {
				t.Errorf("type = %s", c.Type)
			}
		}},
		{name: "OKShell", in: ExecuteCommand{ProjectID: "web", Shell: "echo $HOME | wc"}, check: func(t *testing.T, c *Command) {
			if c.Type != CommandShell || !slices.Equal(c.Argv, []string{"/bin/sh", "-c", "echo $HOME | wc"}) {
				t.Errorf("type %s argv %q", c.Type, c.Argv)
			}
		}},
		{name: "OKShellTypeGiven", in: ExecuteCommand{ProjectID: "web", Type: CommandShell, Shell: "true"}},
		{name: "OKArgvMaxArgsAndBytes", in: argv("a", "b", "c", strings.Repeat("d", 61))},
		{name: "OKArgvControlCharactersKept", in: argv("printf", "a\tb\x1b[0m"), check: func(t *testing.T, c *Command) {
			if c.Argv[1] != "a\tb\x1b[0m" {
				t.Errorf("argv = %q", c.Argv)
			}
		}},
		{name: "OKEnv", in: with(ls, func(in *ExecuteCommand) { in.Env = env("A", "1", "_b2", "", "Path", "x=y") }), check: func(t *testing.T, c *Command) {
			if len(c.Env) != 3 || c.Env["A"] != "1" || c.Env["_b2"] != "" || c.Env["Path"] != "x=y" {
				t.Errorf("env = %v", c.Env)
			}
		}},
		{name: "OKEnvMaxBytes", in: with(ls, func(in *ExecuteCommand) { in.Env = env("A", strings.Repeat("v", 39)) })},
		{name: "OKTimeout", in: with(ls, func(in *ExecuteCommand) { in.TimeoutSeconds = ptr(90) }), check: func(t *testing.T, c *Command) {
			if c.Timeout != 90*time.Second {
				t.Errorf("timeout = %s", c.Timeout)
			}
		}},
		{name: "OKTimeoutMax", in: with(ls, func(in *ExecuteCommand) { in.TimeoutSeconds = ptr(3600) }), check: func(t *testing.T, c *Command) {
			if c.Timeout != time.Hour {
				t.Errorf("timeout = %s", c.Timeout)
			}
		}},
		{name: "OKPriorityLow", in: with(ls, func(in *ExecuteCommand) { in.Priority = -1 }), check: func(t *testing.T, c *Command) {
			if c.Priority != PriorityLow || PriorityLow != -1 {
				t.Errorf("priority -1 = %s (%d), want LOW", c.Priority, c.Priority)
			}
		}},
		{name: "OKPriorityZeroIsNormal", in: ExecuteCommand{ProjectID: "web", Argv: []string{"ls"}}, check: func(t *testing.T, c *Command) {
			if c.Priority != PriorityNormal || PriorityNormal != 0 {
				t.Errorf("priority left out = %s (%d), want NORMAL", c.Priority, c.Priority)
			}
		}},
		{name: "OKPriorityUrgent", in: with(ls, func(in *ExecuteCommand) { in.Priority = PriorityUrgent }), check: func(t *testing.T, c *Command) {
			if c.Priority != PriorityUrgent {
				t.Errorf("priority = %s", c.Priority)
			}
		}},
		{name: "OKClientToken", in: with(ls, func(in *ExecuteCommand) { in.ClientToken = strings.Repeat("t", MaxClientTokenLength) }), check: func(t *testing.T, c *Command) {
			if c.ClientToken != strings.Repeat("t", MaxClientTokenLength) {
				t.Errorf("client token = %q", c.ClientToken)
			}
		}},

		{name: "ErrInvalidProjectID", in: ExecuteCommand{ProjectID: "Web!", Argv: []string{"ls"}}, wantErr: "projectId"},
		{name: "ErrInvalidNone", in: ExecuteCommand{ProjectID: "web"}, wantErr: "exactly one"},
		{name: "ErrInvalidEmptyArgvSlice", in: ExecuteCommand{ProjectID: "web", Argv: []string{}}, wantErr: "exactly one"},
		{name: "ErrInvalidArgvAndShell", in: ExecuteCommand{ProjectID: "web", Argv: []string{"ls"}, Shell: "ls"}, wantErr: "exactly one"},
		{name: "ErrInvalidShellAndPrompt", in: ExecuteCommand{ProjectID: "web", Shell: "ls", Prompt: "hi"}, wantErr: "exactly one"},
		{name: "ErrInvalidAllThree", in: ExecuteCommand{ProjectID: "web", Argv: []string{"ls"}, Shell: "ls", Prompt: "hi"}, wantErr: "exactly one"},
		{name: "ErrInvalidTypeShellWithArgv", in: with(ls, func(in *ExecuteCommand) { in.Type = CommandShell }), wantErr: "type: SHELL does not go"},
		{name: "ErrInvalidTypeClaudeWithShell", in: ExecuteCommand{ProjectID: "web", Type: CommandClaude, Shell: "ls"}, wantErr: "type: CLAUDE"},
		{name: "ErrInvalidTypeExecWithPrompt", in: ExecuteCommand{ProjectID: "web", Type: CommandExec, Prompt: "hi"}, wantErr: "type: EXEC"},
		{name: "ErrInvalidTypeUnknown", in: with(ls, func(in *ExecuteCommand) { in.Type = "PYTHON" }), wantErr: "type: PYTHON"},
		{name: "ErrInvalidEmptyProgram", in: argv("", "x"), wantErr: "argv[0]"},
		{name: "ErrInvalidTooManyArgs", in: argv("a", "b", "c", "d", "e"), wantErr: "at most 4 arguments"},
		{name: "ErrInvalidArgvTooLarge", in: argv("a", "b", "c", strings.Repeat("d", 62)), wantErr: "at most 64 bytes"},
		{name: "ErrInvalidArgvNUL", in: argv("ls", "a\x00b"), wantErr: "argv[1]"},
		{name: "ErrInvalidArgvUTF8", in: argv("ls\xff"), wantErr: "argv[0]"},
		{name: "ErrInvalidShellTooLarge", in: ExecuteCommand{ProjectID: "web", Shell: strings.Repeat("x", 33)}, wantErr: "shell"},
		{name: "ErrInvalidShellNUL", in: ExecuteCommand{ProjectID: "web", Shell: "ls\x00"}, wantErr: "shell"},
		{name: "ErrInvalidShellUTF8", in: ExecuteCommand{ProjectID: "web", Shell: "ls \xc3"}, wantErr: "shell"},
		{name: "ErrInvalidEnvName", in: with(ls, func(in *ExecuteCommand) { in.Env = env("1A", "x") }), wantErr: "not a valid variable name"},
		{name: "ErrInvalidEnvNameEmpty", in: with(ls, func(in *ExecuteCommand) { in.Env = env("", "x") }), wantErr: "not a valid variable name"},
		{name: "ErrInvalidEnvNameEquals", in: with(ls, func(in *ExecuteCommand) { in.Env = env("A=B", "x") }), wantErr: "not a valid variable name"},
		{name: "ErrInvalidEnvNameDash", in: with(ls, func(in *ExecuteCommand) { in.Env = env("MY-VAR", "x") }), wantErr: "not a valid variable name"},
		{name: "ErrInvalidEnvNameTooLong", in: with(ls, func(in *ExecuteCommand) { in.Env = env(strings.Repeat("A", 257), "") }), wantErr: "not a valid variable name"},
		{name: "ErrInvalidEnvDuplicate", in: with(ls, func(in *ExecuteCommand) { in.Env = env("A", "1", "A", "2") }), wantErr: "A is given twice"},
		{name: "ErrInvalidEnvTooMany", in: with(ls, func(in *ExecuteCommand) { in.Env = env("A", "", "B", "", "C", "", "D", "") }), wantErr: "at most 3 variables"},
		{name: "ErrInvalidEnvTooLarge", in: with(ls, func(in *ExecuteCommand) { in.Env = env("A", strings.Repeat("v", 40)) }), wantErr: "at most 40 bytes"},
		{name: "ErrInvalidEnvValueNUL", in: with(ls, func(in *ExecuteCommand) { in.Env = env("A", "a\x00") }), wantErr: "value of A"},
		{name: "ErrInvalidEnvValueUTF8", in: with(ls, func(in *ExecuteCommand) { in.Env = env("A", "\xfe") }), wantErr: "value of A"},
		{name: "ErrInvalidWorkdirAbsolute", in: with(ls, func(in *ExecuteCommand) { in.Workdir = "/etc" }), wantErr: "relative"},
		{name: "ErrInvalidWorkdirParent", in: with(ls, func(in *ExecuteCommand) { in.Workdir = ".." }), wantErr: "inside the project"},
		{name: "ErrInvalidWorkdirEscape", in: with(ls, func(in *ExecuteCommand) { in.Workdir = "src/../../etc" }), wantErr: "inside the project"},
		{name: "ErrInvalidWorkdirDotDotSlash", in: with(ls, func(in *ExecuteCommand) { in.Workdir = "../x" }), wantErr: "inside the project"},
		{name: "ErrInvalidWorkdirNUL", in: with(ls, func(in *ExecuteCommand) { in.Workdir = "a\x00" }), wantErr: "workdir"},
		{name: "ErrInvalidWorkdirTooLong", in: with(ls, func(in *ExecuteCommand) { in.Workdir = strings.Repeat("a", 4097) }), wantErr: "workdir"},
		{name: "ErrInvalidTimeoutZero", in: with(ls, func(in *ExecuteCommand) { in.TimeoutSeconds = ptr(0) }), wantErr: "timeoutSeconds"},
		{name: "ErrInvalidTimeoutNegative", in: with(ls, func(in *ExecuteCommand) { in.TimeoutSeconds = ptr(-5) }), wantErr: "timeoutSeconds"},
		{name: "ErrInvalidTimeoutTooLong", in: with(ls, func(in *ExecuteCommand) { in.TimeoutSeconds = ptr(3601) }), wantErr: "between 1 and 3600"},
		{name: "ErrInvalidPriorityNegative", in: with(ls, func(in *ExecuteCommand) { in.Priority = -2 }), wantErr: "priority"},
		{name: "ErrInvalidPriorityTooHigh", in: with(ls, func(in *ExecuteCommand) { in.Priority = PriorityUrgent + 1 }), wantErr: "priority"},
		{name: "ErrInvalidClientTokenTooLong", in: with(ls, func(in *ExecuteCommand) { in.ClientToken = strings.Repeat("t", MaxClientTokenLength+1) }), wantErr: "clientToken"},
		{name: "ErrInvalidClientTokenControl", in: with(ls, func(in *ExecuteCommand) { in.ClientToken = "tok\x1b" }), wantErr: "clientToken"},
		{name: "ErrInvalidClientTokenNUL", in: with(ls, func(in *ExecuteCommand) { in.ClientToken = "tok\x00" }), wantErr: "clientToken"},
		{name: "ErrInvalidClientTokenDEL", in: with(ls, func(in *ExecuteCommand) { in.ClientToken = "tok\x7f" }), wantErr: "clientToken"},
		{name: "ErrInvalidClientTokenUTF8", in: with(ls, func(in *ExecuteCommand) { in.ClientToken = "tok\xff" }), wantErr: "clientToken"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := commandFrom(tt.in, lim)
			if tt.wantErr != "" {
				wantCode(t, err, EINVALID)
				if msg := ErrorMessage(err); !strings.Contains(msg, tt.wantErr) {
					t.Errorf("message %q does not mention %q", msg, tt.wantErr)
				}
				if c != nil {
					t.Errorf("command = %+v, want nil on error", c)
				}
				return
			}
			if err != nil {
				t.Fatalf("commandFrom: %v", err)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestCommandFrom_Workdir(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{".", ""},
		{"./", ""},
		{"src", "src"},
		{"./src/", "src"},
		{"src//pkg/./x", "src/pkg/x"},
		{"src/../lib", "lib"},
		{"a/b/../..", ""},
		{"..foo", "..foo"},
		{"a/..b", "a/..b"},
	} {
		t.Run(tt.in, func(t *testing.T) {
			c, err := commandFrom(ExecuteCommand{ProjectID: "web", Argv: []string{"ls"}, Workdir: tt.in}, testLimits())
			if err != nil {
				t.Fatalf("commandFrom: %v", err)
			}
			if c.Workdir != tt.want {
				t.Errorf("workdir %q cleaned to %q, want %q", tt.in, c.Workdir, tt.want)
			}
		})
	}
}

// TestCommandFrom_Claude checks that a prompt becomes exactly one argv
// element after "-p", whatever it holds: it never goes through a shell.
func TestCommandFrom_Claude(t *testing.T) {
	lim := testLimits()
	for _, prompt := range []string{
		"fix the tests",
		`say "hello" and 'bye'`,
		"$(rm -rf /)",
		"`reboot`; rm -rf / && echo pwned > /etc/passwd | cat",
		"line one\nline two\n\ttabbed\r\n",
		"-p --dangerously-skip-permissions",
		"ünïcödé ✓ 日本語 🎉",
		"  leading and trailing spaces  ",
		"*.go ~ $HOME ${PATH} \\ \\n",
	} {
		t.Run(prompt, func(t *testing.T) {
			for _, typ := range []CommandType{"", CommandClaude} {
				c, err := commandFrom(ExecuteCommand{ProjectID: "web", Type: typ, Prompt: prompt}, lim)
				if err != nil {
					t.Fatalf("type %q: commandFrom: %v", typ, err)
				}
				want := append(slices.Clone(lim.ClaudeCommand), "-p", "--", prompt)
				if c.Type != CommandClaude || !slices.Equal(c.Argv, want) {
					t.Errorf("type %q: got type %s argv %q, want CLAUDE %q", typ, c.Type, c.Argv, want)
				}
			}
		})
	}
	t.Run("ClaudeCommandNotShared", func(t *testing.T) {
		c, err := commandFrom(ExecuteCommand{ProjectID: "web", Prompt: "hi"}, lim)
		if err != nil {
			t.Fatal(err)
		}
		c.Argv[0] = "changed"
		if lim.ClaudeCommand[0] != "claude" {
			t.Errorf("changing a command's argv changed the configured ClaudeCommand: %q", lim.ClaudeCommand)
		}
	})
}

func TestValidatePrompt(t *testing.T) {
	for _, tt := range []struct {
		name, prompt, wantErr string
	}{
		{"OK", "hello", ""},
		{"OKNewlinesAndTabs", "a\nb\r\n\tc", ""},
		{"OKMaxBytes", strings.Repeat("é", 16), ""},
		{"ErrInvalidEmpty", "", "empty"},
		{"ErrInvalidBlank", " \n\t ", "empty"},
		{"ErrInvalidTooLong", strings.Repeat("x", 33), "at most 32 bytes"},
		{"ErrInvalidTooLongMultibyte", strings.Repeat("é", 16) + "x", "at most 32 bytes"},
		{"ErrInvalidNUL", "a\x00b", "control"},
		{"ErrInvalidEscape", "a\x1b[31mb", "control"},
		{"ErrInvalidBell", "a\ab", "control"},
		{"ErrInvalidDEL", "a\x7f", "control"},
		{"ErrInvalidUTF8", "a\xffb", "UTF-8"},
		{"ErrInvalidTruncatedUTF8", "a\xe2\x82", "UTF-8"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidatePrompt(tt.prompt, 32)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ValidatePrompt: %v", err)
				}
				return
			}
			wantCode(t, err, EINVALID)
			if !strings.Contains(ErrorMessage(err), tt.wantErr) {
				t.Errorf("message %q does not mention %q", ErrorMessage(err), tt.wantErr)
			}
			// The same rules apply through commandFrom.
			lim := testLimits()
			lim.MaxPromptBytes = 32
			if _, err := commandFrom(ExecuteCommand{ProjectID: "web", Prompt: tt.prompt}, lim); tt.prompt != "" && ErrorCode(err) != EINVALID {
				t.Errorf("commandFrom accepted prompt %q: %v", tt.prompt, err)
			}
		})
	}
}

// TestCommandFrom_TimeoutOverflow checks that a huge timeoutSeconds is
// rejected rather than wrapping around into a short (or negative) timeout.
func TestCommandFrom_TimeoutOverflow(t *testing.T) {
	for _, secs := range []int{18446744074, 9223372037, 1 << 62} {
		c, err := commandFrom(ExecuteCommand{ProjectID: "web", Argv: []string{"ls"}, TimeoutSeconds: ptr(secs)}, testLimits())
		if ErrorCode(err) != EINVALID {
			t.Errorf("timeoutSeconds %d: accepted with timeout %v, want EINVALID", secs, c.Timeout)
		}
	}
}

// TestCommandFrom_ClientTokenPrintable checks the documented rule "at most
// 128 printable characters".
func TestCommandFrom_ClientTokenPrintable(t *testing.T) {
	for _, tok := range []string{"a\tb", "a\nb", "a\rb"} {
		if _, err := commandFrom(ExecuteCommand{ProjectID: "web", Argv: []string{"ls"}, ClientToken: tok}, testLimits()); ErrorCode(err) != EINVALID {
			t.Errorf("client token %q accepted, want EINVALID", tok)
		}
	}
	tok := strings.Repeat("é", 100)
	if utf8.RuneCountInString(tok) > MaxClientTokenLength {
		t.Fatal("test token too long")
	}
	if _, err := commandFrom(ExecuteCommand{ProjectID: "web", Argv: []string{"ls"}, ClientToken: tok}, testLimits()); err != nil {
		t.Errorf("client token of 100 characters refused: %v", err)
	}
}

func TestParsePriority(t *testing.T) {
	for _, p := range Priorities {
		got, err := ParsePriority(p.String())
		if err != nil || got != p {
			t.Errorf("ParsePriority(%q) = %v, %v; want %v", p.String(), got, err, p)
		}
	}
	for _, name := range []string{"", "normal", "CRITICAL", " HIGH"} {
		_, err := ParsePriority(name)
		wantCode(t, err, EINVALID)
	}
	if s := Priority(42).String(); s != "UNKNOWN" {
		t.Errorf("Priority(42).String() = %q", s)
	}
	if !slices.IsSorted(Priorities) || len(Priorities) != 4 {
		t.Errorf("Priorities = %v, want four, lowest first", Priorities)
	}
}

func TestCommandStatus_Final(t *testing.T) {
	for _, s := range CommandStatuses {
		want := s != CommandQueued && s != CommandRunning
		if s.Final() != want {
			t.Errorf("%s.Final() = %v, want %v", s, s.Final(), want)
		}
	}
	if CommandStatus("").Final() {
		t.Error(`"".Final() = true`)
	}
}

func TestCommand_DurationAndClone(t *testing.T) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	c := &Command{Argv: []string{"a", "b"}, Env: map[string]string{"K": "v"}, StartedAt: &start}
	if d := c.Duration(); d != 0 {
		t.Errorf("Duration of an unfinished command = %s, want 0", d)
	}
	end := start.Add(1500 * time.Millisecond)
	c.FinishedAt = &end
	if d := c.Duration(); d != 1500*time.Millisecond {
		t.Errorf("Duration = %s", d)
	}
	cp := c.Clone()
	cp.Argv[0], cp.Env["K"] = "x", "changed"
	if c.Argv[0] != "a" || c.Env["K"] != "v" {
		t.Errorf("Clone shares argv or env: %q %v", c.Argv, c.Env)
	}
}

func TestClipMessage(t *testing.T) {
	short := "short"
	if Clip(short) != short {
		t.Errorf("Clip(%q) = %q", short, Clip(short))
	}
	long := strings.Repeat("é", 100) // 200 bytes; byte 80 starts a rune
	got := Clip(long)
	if !utf8.ValidString(got) || !strings.HasSuffix(got, "…") || len(got) > 80+len("…") {
		t.Errorf("Clip(long) = %q", got)
	}
	odd := "x" + strings.Repeat("é", 100) // byte 80 is inside a rune
	if got := Clip(odd); !utf8.ValidString(got) {
		t.Errorf("clipMessage split a rune: %q", got)
	}
}

// TestCommandFrom_ClaudePromptNotAnOption checks that a prompt that starts
// with "-" cannot be read by the Claude CLI as one of its options: "-p" is
// a boolean mode flag there and the prompt is a positional argument, so
// argv [... "-p" "--dangerously-skip-permissions"] turns the flag on
// instead of passing a prompt.
func TestCommandFrom_ClaudePromptNotAnOption(t *testing.T) {
	for _, prompt := range []string{"--dangerously-skip-permissions", "--allowedTools=Bash(*)", "-c"} {
		// Such a prompt is accepted, and "--" keeps it a prompt.
		lim := testLimits()
		c, err := commandFrom(ExecuteCommand{ProjectID: "web", Prompt: prompt}, lim)
		if err != nil {
			t.Fatalf("prompt %q: %v", prompt, err)
		}
		want := append(slices.Clone(lim.ClaudeCommand), "-p", "--", prompt)
		if !slices.Equal(c.Argv, want) {
			t.Errorf("prompt %q: argv %q, want %q: the CLI must not read the prompt as an option", prompt, c.Argv, want)
		}
	}
}
