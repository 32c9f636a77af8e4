package domain

import (
	"time"
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
	// SubscriberBuffer is about the most output, in bytes, held in memory
	// for an output subscriber that falls behind. The hub should buffer no
	// more than this for a subscriber; a stream catching up from storage
	// reads half of it at a time (see outputStream.catchUp).
	SubscriberBuffer int
}

// DefaultCommandLimits are the limits when none are configured.
var DefaultCommandLimits = CommandLimits{
	MaxArgs:          1024,
	MaxArgvBytes:     256 << 10,
	MaxEnvVars:       128,
	MaxEnvBytes:      64 << 10,
	MaxShellBytes:    64 << 10,
	MaxPromptBytes:   100 << 10,
	DefaultTimeout:   time.Hour,
	MaxTimeout:       24 * time.Hour,
	MaxQueuedPerKey:  100,
	Concurrency:      5,
	PerProject:       1,
	ClaudeCommand:    []string{"claude", "--output-format", "stream-json", "--verbose"},
	SubscriberBuffer: 1 << 20,
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

	// agentProtocol, set by AgentService only, makes the command an agent
	// run of that protocol whose argv (of Type) the protocol built.
	agentProtocol string
	// agentSession, set by AgentService only, is the session the agent
	// run resumes.
	agentSession string
}
