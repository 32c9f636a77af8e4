package domain

// Every rule rdev applies to what callers send lives in this file. Each check
// returns EINVALID with a message that names the field and the rule, quoting
// the offending input through Clip, so a client can show the message as is.
// Each parser and validator has a fuzz target (in validate_test.go, or in the
// test file of the feature it serves) with a seed corpus in testdata/fuzz.

import (
	"math"
	"net"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits of the fields that have no configurable limit.
const (
	// MaxWorkdirBytes bounds a command's working directory.
	MaxWorkdirBytes = 4096
	// MaxEnvNameBytes bounds one environment variable's name.
	MaxEnvNameBytes = 256
	// MaxWebhookURLBytes bounds a webhook's URL.
	MaxWebhookURLBytes = 2048
	// MaxLabelFilters bounds the labels in one project filter.
	MaxLabelFilters = 32
)

var (
	envNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// labelNamePattern is the name part of a Kubernetes label key and the
	// shape of a non-empty label value.
	labelNamePattern = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
	// dnsSubdomainPattern is a DNS-1123 subdomain, the prefix of a label key.
	dnsSubdomainPattern = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// ---------------------------------------------------------------- projects

// ValidateProjectID returns EINVALID unless id is a DNS-1123 label, the rule
// Kubernetes applies to label values used as project names.
func ValidateProjectID(id string) error {
	if len(id) > MaxProjectIDLength || !isDNSLabel(id) {
		return Errorf(EINVALID, "projectId: %q is not a DNS-1123 label (lower-case letters, digits and '-', at most %d characters)", Clip(id), MaxProjectIDLength)
	}
	return nil
}

// isDNSLabel reports whether s matches ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$, by
// hand: every listed project is checked on every request that lists them.
func isDNSLabel(s string) bool {
	if s == "" || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := range len(s) {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// ValidateLabelFilter checks the labels of a project filter against
// Kubernetes' label syntax: keys are [prefix/]name (a DNS subdomain of at most
// 253 characters, a name of at most 63), values at most 63 characters of the
// same alphabet as names, or empty.
func ValidateLabelFilter(labels map[string]string) error {
	if len(labels) > MaxLabelFilters {
		return Errorf(EINVALID, "filter.labels: at most %d labels, got %d", MaxLabelFilters, len(labels))
	}
	for k, v := range labels {
		if !validLabelKey(k) {
			return Errorf(EINVALID, "filter.labels: %q is not a label key ([prefix/]name: a DNS subdomain, then at most 63 letters, digits, '-', '_' or '.')", Clip(k))
		}
		if v != "" && (len(v) > 63 || !labelNamePattern.MatchString(v)) {
			return Errorf(EINVALID, "filter.labels: the value of %s, %q, is not a label value (at most 63 letters, digits, '-', '_' or '.', beginning and ending with a letter or digit)", k, Clip(v))
		}
	}
	return nil
}

func validLabelKey(k string) bool {
	name := k
	if prefix, rest, ok := strings.Cut(k, "/"); ok {
		if prefix == "" || len(prefix) > 253 || !dnsSubdomainPattern.MatchString(prefix) {
			return false
		}
		name = rest
	}
	return name != "" && len(name) <= 63 && labelNamePattern.MatchString(name)
}

// ---------------------------------------------------------------- commands

// commandFrom validates in against lim and builds the command to queue (ID,
// times and key are the caller's to set).
func commandFrom(in ExecuteCommand, lim CommandLimits) (*Command, error) {
	if err := ValidateProjectID(in.ProjectID); err != nil {
		return nil, err
	}
	c := &Command{ProjectID: in.ProjectID, Status: CommandQueued, Priority: in.Priority, AgentProtocol: in.agentProtocol, AgentSession: in.agentSession}
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
	if c.Timeout, err = commandTimeout(in.TimeoutSeconds, lim); err != nil {
		return nil, err
	}
	if err := validateClientToken(in.ClientToken); err != nil {
		return nil, err
	}
	c.ClientToken = in.ClientToken
	return c, nil
}

// argvFrom turns the one given form of the program into argv.
func argvFrom(in ExecuteCommand, lim CommandLimits) (CommandType, []string, error) {
	if in.agentProtocol != "" {
		// The protocol built and checked argv; only its bounds are left.
		return in.Type, in.Argv, validateArgv(in.Argv, lim)
	}
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
		if err := validateShell(in.Shell, lim.MaxShellBytes); err != nil {
			return "", nil, err
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
	if len(argv) == 0 || argv[0] == "" {
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

func validateShell(script string, maxBytes int) error {
	if len(script) > maxBytes || !utf8.ValidString(script) || strings.ContainsRune(script, 0) {
		return Errorf(EINVALID, "shell: must be valid UTF-8 without NUL, at most %d bytes", maxBytes)
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
		if len(v.Name) > MaxEnvNameBytes || !envNamePattern.MatchString(v.Name) {
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

// cleanWorkdir returns a clean relative path inside the project ("" for its
// root), or EINVALID.
func cleanWorkdir(dir string) (string, error) {
	if dir == "" {
		return "", nil
	}
	if len(dir) > MaxWorkdirBytes || !utf8.ValidString(dir) || strings.ContainsRune(dir, 0) {
		return "", Errorf(EINVALID, "workdir: must be a valid path of at most %d bytes", MaxWorkdirBytes)
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

// commandTimeout is the timeout asked for, or the default when nil.
func commandTimeout(seconds *int, lim CommandLimits) (time.Duration, error) {
	if seconds == nil {
		return lim.DefaultTimeout, nil
	}
	t := *seconds
	if t <= 0 || int64(t) > int64(lim.MaxTimeout/time.Second) {
		return 0, Errorf(EINVALID, "timeoutSeconds: must be between 1 and %d, got %d", int(lim.MaxTimeout.Seconds()), t)
	}
	return time.Duration(t) * time.Second, nil
}

func validateClientToken(token string) error {
	if utf8.RuneCountInString(token) > MaxClientTokenLength || !utf8.ValidString(token) ||
		strings.IndexFunc(token, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return Errorf(EINVALID, "clientToken: must be at most %d printable characters", MaxClientTokenLength)
	}
	return nil
}

// ---------------------------------------------------------------- agents

// Limits of an agent run's input.
const (
	// MaxAgentPromptBytes bounds a prompt, which travels as one argument
	// (Linux takes at most 128 KiB in one).
	MaxAgentPromptBytes = 100 << 10
	// MaxAgentSystemPromptBytes bounds appended system prompt text.
	MaxAgentSystemPromptBytes = 16 << 10
	// MaxAgentTools bounds allowed and disallowed tools, each.
	MaxAgentTools = 64
	// MaxAgentToolBytes bounds one tool name or rule.
	MaxAgentToolBytes = 256
	// MaxAgentModelBytes bounds a model name.
	MaxAgentModelBytes = 128
	// MaxAgentTurns bounds maxTurns.
	MaxAgentTurns = 1000
	// MaxAgentCostUSD bounds maxCostUsd.
	MaxAgentCostUSD = 10000
)

var (
	// agentSessionPattern is a UUID, the form of Claude Code's session IDs
	// (and Codex's and Gemini's).
	agentSessionPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	// agentModelPattern is a model name or alias ("sonnet",
	// "claude-opus-4-1-20250805", "sonnet[1m]", "us.anthropic.claude…:0").
	agentModelPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/@\[\]-]*$`)
	// agentToolPattern is a tool name ("Bash", "mcp__github__get_issue"),
	// optionally with a rule in parentheses ("Bash(git log:*)",
	// "Edit(/src/**)"): no white space or comma outside the parentheses,
	// which CLIs take as list separators, and no control characters.
	agentToolPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]*(\([^()\x00-\x1f\x7f]*\))?$`)
)

// ValidateAgentRequest checks what every agent protocol passes on: a prompt
// (ValidatePrompt, at most MaxAgentPromptBytes), a session ID that is a UUID,
// a model name of letters, digits and ._:/@[]- (at most MaxAgentModelBytes),
// at most MaxAgentTools tools of each kind, each a name with an optional
// rule in parentheses, maxTurns between 0 (the CLI's default) and
// MaxAgentTurns, and system prompt text that is valid UTF-8 without control
// characters but tab and newlines. It returns EINVALID naming the field.
// The permission mode is each protocol's to check.
func ValidateAgentRequest(r AgentRequest) error {
	if err := ValidatePrompt(r.Prompt, MaxAgentPromptBytes); err != nil {
		return err
	}
	if r.SessionID != "" && !agentSessionPattern.MatchString(r.SessionID) {
		return Errorf(EINVALID, "sessionId: %q is not a session ID (a UUID)", Clip(r.SessionID))
	}
	if r.Model != "" && (len(r.Model) > MaxAgentModelBytes || !agentModelPattern.MatchString(r.Model)) {
		return Errorf(EINVALID, "model: %q is not a model name (letters, digits and ._:/@[]-, at most %d bytes)", Clip(r.Model), MaxAgentModelBytes)
	}
	if err := validateAgentTools("allowedTools", r.AllowedTools); err != nil {
		return err
	}
	if err := validateAgentTools("disallowedTools", r.DisallowedTools); err != nil {
		return err
	}
	if r.MaxTurns < 0 || r.MaxTurns > MaxAgentTurns {
		return Errorf(EINVALID, "maxTurns: must be between 1 and %d (or 0 for the agent's default), got %d", MaxAgentTurns, r.MaxTurns)
	}
	if c := r.MaxCostUSD; c < 0 || c > MaxAgentCostUSD || math.IsNaN(c) {
		return Errorf(EINVALID, "maxCostUsd: must be above 0 and at most %g (or 0 for no limit), got %g", float64(MaxAgentCostUSD), c)
	}
	switch p := r.AppendSystemPrompt; {
	case len(p) > MaxAgentSystemPromptBytes:
		return Errorf(EINVALID, "appendSystemPrompt: at most %d bytes, got %d", MaxAgentSystemPromptBytes, len(p))
	case !utf8.ValidString(p) || hasControl(p):
		return Errorf(EINVALID, "appendSystemPrompt: must be valid UTF-8 without control characters (tab and newlines allowed)")
	}
	return nil
}

func validateAgentTools(field string, tools []string) error {
	if len(tools) > MaxAgentTools {
		return Errorf(EINVALID, "%s: at most %d tools, got %d", field, MaxAgentTools, len(tools))
	}
	for i, t := range tools {
		if len(t) > MaxAgentToolBytes || !utf8.ValidString(t) || !agentToolPattern.MatchString(t) {
			return Errorf(EINVALID, "%s[%d]: %q is not a tool (a name of letters, digits and _.-, optionally with a rule in parentheses, e.g. Bash(git log:*); at most %d bytes)", field, i, Clip(t), MaxAgentToolBytes)
		}
	}
	return nil
}

// ---------------------------------------------------------------- API keys

// validateKeyName returns EINVALID unless name is 1..MaxKeyNameLength
// printable characters.
func validateKeyName(name string) error {
	if strings.TrimSpace(name) == "" {
		return Errorf(EINVALID, "name: must not be empty")
	}
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > MaxKeyNameLength {
		return Errorf(EINVALID, "name: must be valid UTF-8 of at most %d characters", MaxKeyNameLength)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return Errorf(EINVALID, "name: must not contain control characters")
		}
	}
	return nil
}

// ParseScopes parses scope names, dropping duplicates. It returns EINVALID for
// an unknown name, too many entries or an empty list.
func ParseScopes(names []string) (Scopes, error) {
	if len(names) == 0 {
		return nil, Errorf(EINVALID, "scopes: at least one scope is required")
	}
	if len(names) > MaxKeyScopesEntries {
		return nil, Errorf(EINVALID, "scopes: at most %d entries", MaxKeyScopesEntries)
	}
	out := make(Scopes, 0, len(names))
	for _, n := range names {
		s := Scope(strings.TrimSpace(n))
		if !s.Valid() {
			return nil, Errorf(EINVALID, "scopes: unknown scope %q (known: %s)", Clip(n), joinScopes(AllScopes))
		}
		out = append(out, s)
	}
	return out.normalize(), nil
}

// ParseCIDRs parses CIDR prefixes (IPv4 or IPv6; a bare address means just
// that address). It returns EINVALID naming the first bad entry.
func ParseCIDRs(entries []string) ([]netip.Prefix, error) {
	if len(entries) > MaxAllowedCIDRs {
		return nil, Errorf(EINVALID, "allowedCIDRs: at most %d entries, got %d", MaxAllowedCIDRs, len(entries))
	}
	out := make([]netip.Prefix, 0, len(entries))
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if p, err := netip.ParsePrefix(e); err == nil {
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				// Client addresses are compared unmapped, so the prefix must be too.
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			out = append(out, p.Masked())
		} else if a, err := netip.ParseAddr(e); err == nil && a.Zone() == "" {
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		} else {
			return nil, Errorf(EINVALID, "allowedCIDRs: %q is not a CIDR prefix such as 10.0.0.0/8 or 2001:db8::/32", Clip(e))
		}
	}
	return out, nil
}

func validateExpiry(at *time.Time, now time.Time) error {
	if at != nil && !at.After(now) {
		return Errorf(EINVALID, "expiresAt: must be in the future")
	}
	return nil
}

func validateKeyRateLimit(rps int) error {
	if rps < 0 || rps > MaxKeyRateLimit {
		return Errorf(EINVALID, "rateLimit: must be between 0 and %d requests per second", MaxKeyRateLimit)
	}
	return nil
}

func validateRotationGrace(grace time.Duration) error {
	if grace < 0 || grace > MaxRotationGrace {
		return Errorf(EINVALID, "gracePeriodSeconds: must be between 0 and %d", int(MaxRotationGrace.Seconds()))
	}
	return nil
}

// ---------------------------------------------------------------- pagination

func validatePageSize(first int) error {
	if first < 0 || first > MaxPageSize {
		return Errorf(EINVALID, "first: must be between 0 and %d, got %d", MaxPageSize, first)
	}
	return nil
}

// ---------------------------------------------------------------- webhooks

// ParseWebhookURL checks a webhook's target: an absolute https URL (or http
// when allowHTTP, for development) with a host, no user name or password, no
// fragment, at most MaxWebhookURLBytes. It does not resolve the host: which
// addresses may be dialled is the delivering dialer's rule, checked at every
// connection, since DNS can change between now and then.
func ParseWebhookURL(raw string, allowHTTP bool) (*url.URL, error) {
	if len(raw) > MaxWebhookURLBytes || !utf8.ValidString(raw) || hasControl(raw) || strings.ContainsAny(raw, " \t\r\n") {
		return nil, Errorf(EINVALID, "url: must be a URL of at most %d bytes without spaces or control characters", MaxWebhookURLBytes)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Opaque != "" {
		return nil, Errorf(EINVALID, "url: %q is not an absolute URL such as https://hooks.example.com/rdev", Clip(raw))
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !allowHTTP {
			return nil, Errorf(EINVALID, "url: must use https, got %q", Clip(raw))
		}
	default:
		return nil, Errorf(EINVALID, "url: scheme %q is not allowed (https only)", Clip(u.Scheme))
	}
	if u.User != nil {
		return nil, Errorf(EINVALID, "url: must not carry a user name or password; webhooks are signed instead")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return nil, Errorf(EINVALID, "url: must not have a fragment")
	}
	host := u.Hostname()
	if host == "" {
		return nil, Errorf(EINVALID, "url: must name a host")
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, Errorf(EINVALID, "url: port %q is not between 1 and 65535", Clip(port))
		}
	}
	if ip := net.ParseIP(host); ip == nil && !validHostname(host) {
		return nil, Errorf(EINVALID, "url: %q is not a valid host name", Clip(host))
	}
	return u, nil
}

// ParseWebhookEvents checks event type names and returns them sorted without
// duplicates. It returns EINVALID for an empty list or an unknown name.
func ParseWebhookEvents(names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, Errorf(EINVALID, "events: must name at least one of %s", strings.Join(WebhookEvents, ", "))
	}
	if len(names) > 4*len(WebhookEvents) {
		return nil, Errorf(EINVALID, "events: at most %d entries", 4*len(WebhookEvents))
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		if !slices.Contains(WebhookEvents, n) {
			return nil, Errorf(EINVALID, "events: %q is not an event type; use %s", Clip(n), strings.Join(WebhookEvents, ", "))
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// validateWebhookDescription returns EINVALID unless d is at most
// MaxWebhookDescriptionLength printable characters.
func validateWebhookDescription(d string) error {
	if !utf8.ValidString(d) || utf8.RuneCountInString(d) > MaxWebhookDescriptionLength {
		return Errorf(EINVALID, "description: must be valid UTF-8 of at most %d characters", MaxWebhookDescriptionLength)
	}
	for _, r := range d {
		if !unicode.IsPrint(r) {
			return Errorf(EINVALID, "description: must not contain control characters")
		}
	}
	return nil
}

func validateWebhookSecretGrace(grace time.Duration) error {
	if grace < 0 || grace > MaxWebhookSecretGrace {
		return Errorf(EINVALID, "gracePeriodSeconds: must be between 0 and %d", int64(MaxWebhookSecretGrace/time.Second))
	}
	return nil
}

// validHostname reports whether h is a DNS name: dot-separated labels of
// letters, digits and '-', at most 253 characters (a trailing dot allowed).
func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '-' {
				return false
			}
		}
	}
	return true
}
