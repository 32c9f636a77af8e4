package domain

import (
	"path"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// CommandLimits bound what one command may ask for.
type CommandLimits struct {
	MaxArgs         int
	MaxArgvBytes    int
	MaxEnvVars      int
	MaxEnvBytes     int
	MaxShellBytes   int
	MaxPromptBytes  int
	DefaultTimeout  time.Duration
	MaxTimeout      time.Duration
	MaxQueuedPerKey int
	// Concurrency is how many commands one process runs at once.
	Concurrency int
	// PerProject is how many commands run at once in one project.
	PerProject int
	// ClaudeCommand is the argv prefix of CLAUDE commands; "-p", "--" and the
	// prompt, as one element, follow.
	ClaudeCommand []string
}

// DefaultCommandLimits are the limits when none are configured.
var DefaultCommandLimits = CommandLimits{
	MaxArgs:         1024,
	MaxArgvBytes:    256 << 10,
	MaxEnvVars:      128,
	MaxEnvBytes:     64 << 10,
	MaxShellBytes:   64 << 10,
	MaxPromptBytes:  100 << 10,
	DefaultTimeout:  time.Hour,
	MaxTimeout:      24 * time.Hour,
	MaxQueuedPerKey: 100,
	Concurrency:     5,
	PerProject:      1,
	ClaudeCommand:   []string{"claude", "--output-format", "stream-json", "--verbose"},
}

// MaxClientTokenLength bounds an idempotency token.
const MaxClientTokenLength = 128

// EnvVar is one environment variable of a command.
type EnvVar struct {
	Name  string
	Value string
}

// ExecuteCommand is the input of CommandService.Execute. Exactly one of Argv,
// Shell and Prompt is set; Type may be left empty and is then inferred.
type ExecuteCommand struct {
	ProjectID string
	Type      CommandType
	Argv      []string
	Shell     string
	Prompt    string
	Env       []EnvVar
	Workdir   string
	Priority  Priority
	// TimeoutSeconds nil means the default timeout.
	TimeoutSeconds *int
	ClientToken    string
}

var envNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// commandFrom validates in against lim and builds the command to queue (ID,
// times and key are the caller's to set). It returns EINVALID naming the
// field and the rule.
func commandFrom(in ExecuteCommand, lim CommandLimits) (*Command, error) {
	if err := ValidateProjectID(in.ProjectID); err != nil {
		return nil, err
	}
	c := &Command{ProjectID: in.ProjectID, Status: CommandQueued, Priority: in.Priority}
	var err error
	if c.Type, c.Argv, err = argvFrom(in, lim); err != nil {
		return nil, err
	}
	if c.Env, err = envFrom(in.Env, lim); err != nil {
		return nil, err
	}
	if c.Workdir, err = cleanWorkdir(in.Workdir); err != nil {
		return nil, err
	}
	if _, ok := priorityNames[in.Priority]; !ok {
		return nil, Errorf(EINVALID, "priority: unknown priority %d", in.Priority)
	}
	c.Timeout = lim.DefaultTimeout
	if in.TimeoutSeconds != nil {
		t := *in.TimeoutSeconds
		if t <= 0 || int64(t) > int64(lim.MaxTimeout/time.Second) {
			return nil, Errorf(EINVALID, "timeoutSeconds: must be between 1 and %d, got %d", int(lim.MaxTimeout.Seconds()), t)
		}
		c.Timeout = time.Duration(t) * time.Second
	}
	if utf8.RuneCountInString(in.ClientToken) > MaxClientTokenLength || !utf8.ValidString(in.ClientToken) ||
		strings.IndexFunc(in.ClientToken, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return nil, Errorf(EINVALID, "clientToken: must be at most %d printable characters", MaxClientTokenLength)
	}
	c.ClientToken = in.ClientToken
	return c, nil
}

// argvFrom turns the one given form of the program into argv.
func argvFrom(in ExecuteCommand, lim CommandLimits) (CommandType, []string, error) {
	given := 0
	for _, set := range []bool{len(in.Argv) > 0, in.Shell != "", in.Prompt != ""} {
		if set {
			given++
		}
	}
	if given != 1 {
		return "", nil, Errorf(EINVALID, "argv, shell, prompt: give exactly one of them")
	}
	typ := in.Type
	switch {
	case len(in.Argv) > 0 && (typ == "" || typ == CommandExec):
		return CommandExec, in.Argv, validateArgv(in.Argv, lim)
	case in.Shell != "" && (typ == "" || typ == CommandShell):
		if len(in.Shell) > lim.MaxShellBytes || !utf8.ValidString(in.Shell) || strings.ContainsRune(in.Shell, 0) {
			return "", nil, Errorf(EINVALID, "shell: must be valid UTF-8 without NUL, at most %d bytes", lim.MaxShellBytes)
		}
		return CommandShell, []string{"/bin/sh", "-c", in.Shell}, nil
	case in.Prompt != "" && (typ == "" || typ == CommandClaude):
		if err := ValidatePrompt(in.Prompt, lim.MaxPromptBytes); err != nil {
			return "", nil, err
		}
		// "--" ends the options, so a prompt like "--dangerously-skip-permissions"
		// stays a prompt.
		argv := append(append([]string{}, lim.ClaudeCommand...), "-p", "--", in.Prompt)
		return CommandClaude, argv, nil
	}
	return "", nil, Errorf(EINVALID, "type: %s does not go with the program given (EXEC takes argv, SHELL takes shell, CLAUDE takes prompt)", Clip(string(typ)))
}

func validateArgv(argv []string, lim CommandLimits) error {
	if len(argv) > lim.MaxArgs {
		return Errorf(EINVALID, "argv: at most %d arguments, got %d", lim.MaxArgs, len(argv))
	}
	if argv[0] == "" {
		return Errorf(EINVALID, "argv: the program (argv[0]) must not be empty")
	}
	total := 0
	for i, a := range argv {
		total += len(a)
		if !utf8.ValidString(a) || strings.ContainsRune(a, 0) {
			return Errorf(EINVALID, "argv[%d]: must be valid UTF-8 without NUL", i)
		}
	}
	if total > lim.MaxArgvBytes {
		return Errorf(EINVALID, "argv: at most %d bytes in all, got %d", lim.MaxArgvBytes, total)
	}
	return nil
}

// ValidatePrompt checks a prompt for an AI agent: non-empty, valid UTF-8,
// at most maxBytes bytes, and no control characters but tab and newlines.
func ValidatePrompt(p string, maxBytes int) error {
	switch {
	case strings.TrimSpace(p) == "":
		return Errorf(EINVALID, "prompt: must not be empty")
	case len(p) > maxBytes:
		return Errorf(EINVALID, "prompt: at most %d bytes, got %d", maxBytes, len(p))
	case !utf8.ValidString(p):
		return Errorf(EINVALID, "prompt: must be valid UTF-8")
	case hasControl(p):
		return Errorf(EINVALID, "prompt: must not contain control characters (other than tab and newline)")
	}
	return nil
}

func envFrom(vars []EnvVar, lim CommandLimits) (map[string]string, error) {
	if len(vars) > lim.MaxEnvVars {
		return nil, Errorf(EINVALID, "env: at most %d variables, got %d", lim.MaxEnvVars, len(vars))
	}
	env := make(map[string]string, len(vars))
	total := 0
	for _, v := range vars {
		if len(v.Name) > 256 || !envNamePattern.MatchString(v.Name) {
			return nil, Errorf(EINVALID, "env: %q is not a valid variable name (letters, digits, _; not starting with a digit)", Clip(v.Name))
		}
		if _, dup := env[v.Name]; dup {
			return nil, Errorf(EINVALID, "env: %s is given twice", v.Name)
		}
		if !utf8.ValidString(v.Value) || strings.ContainsRune(v.Value, 0) {
			return nil, Errorf(EINVALID, "env: the value of %s must be valid UTF-8 without NUL", v.Name)
		}
		total += len(v.Name) + len(v.Value)
		env[v.Name] = v.Value
	}
	if total > lim.MaxEnvBytes {
		return nil, Errorf(EINVALID, "env: at most %d bytes in all, got %d", lim.MaxEnvBytes, total)
	}
	return env, nil
}

// cleanWorkdir returns a clean relative path inside the project, or EINVALID.
func cleanWorkdir(dir string) (string, error) {
	if dir == "" {
		return "", nil
	}
	if len(dir) > 4096 || !utf8.ValidString(dir) || strings.ContainsRune(dir, 0) {
		return "", Errorf(EINVALID, "workdir: must be a valid path of at most 4096 bytes")
	}
	if strings.HasPrefix(dir, "/") {
		return "", Errorf(EINVALID, "workdir: must be relative to the project root, got %q", Clip(dir))
	}
	clean := path.Clean(dir)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", Errorf(EINVALID, "workdir: must stay inside the project, got %q", Clip(dir))
	}
	if clean == "." {
		return "", nil
	}
	return clean, nil
}
