package main

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/rdev-hq/rdev/domain"
)

// commandConfig is how `rdev serve` queues, runs and records commands.
type commandConfig struct {
	Concurrency      int
	PerProject       int
	MaxQueuedPerKey  int
	DefaultTimeout   time.Duration
	MaxTimeout       time.Duration
	OutputCap        int
	OutputTail       int
	SubscriberBuffer int
	KillGrace        time.Duration
	LeaseTTL         time.Duration
	OutputHold       time.Duration
	FinishGrace      time.Duration
	ClaudeCommand    string
	// AgentClaude is the program (and leading arguments) of Claude Code
	// agent runs.
	AgentClaude string
	// AgentBudgets are the daily limits on what agent runs spend.
	AgentBudgets domain.AgentBudgets
}

func (c *commandConfig) register(f *envFlags) {
	d := domain.DefaultCommandLimits
	f.Int(&c.Concurrency, "concurrent-commands", "CONCURRENT_COMMANDS", d.Concurrency, "commands this process runs at once")
	f.Int(&c.PerProject, "per-project-commands", "RDEV_PER_PROJECT_COMMANDS", d.PerProject, "commands that run at once in one project, across all processes")
	f.Int(&c.MaxQueuedPerKey, "max-queued-per-key", "RDEV_MAX_QUEUED_PER_KEY", d.MaxQueuedPerKey, "commands one API key may have queued (0: no limit)")
	f.Duration(&c.DefaultTimeout, "command-timeout", "RDEV_COMMAND_TIMEOUT", d.DefaultTimeout, "timeout of a command that sets none")
	f.Duration(&c.MaxTimeout, "max-command-timeout", "RDEV_MAX_COMMAND_TIMEOUT", d.MaxTimeout, "largest timeout a command may set")
	f.Int(&c.OutputCap, "output-cap", "RDEV_OUTPUT_CAP", int(domain.DefaultOutputConfig.Cap), "output bytes stored per command; past it the head and a tail window are kept")
	f.Int(&c.OutputTail, "output-tail", "RDEV_OUTPUT_TAIL", int(domain.DefaultOutputConfig.TailWindow), "bytes of a truncated command's tail that are kept")
	f.Int(&c.SubscriberBuffer, "subscriber-buffer", "RDEV_SUBSCRIBER_BUFFER", d.SubscriberBuffer, "bytes of output held in memory for an output subscriber that falls behind; past it, it reads from storage")
	f.Duration(&c.KillGrace, "kill-grace", "RDEV_KILL_GRACE", 5*time.Second, "time between SIGTERM and SIGKILL when a command is cancelled or times out")
	f.Duration(&c.LeaseTTL, "lease-ttl", "RDEV_LEASE_TTL", 30*time.Second, "a running command is INTERRUPTED this long after its process stops renewing it")
	f.Duration(&c.OutputHold, "output-hold", "RDEV_OUTPUT_HOLD", domain.DefaultOutputConfig.HoldFor, "how long output that storage refuses is held and tried again (the command's writes block meanwhile) before it is recorded as lost")
	f.Duration(&c.FinishGrace, "finish-grace", "RDEV_FINISH_GRACE", 30*time.Second, "at shutdown, how long results that storage refuses are still tried (a command whose result is never stored is interrupted when its lease expires)")
	f.String(&c.ClaudeCommand, "claude-command", "RDEV_CLAUDE_COMMAND", strings.Join(d.ClaudeCommand, " "), "program and flags of CLAUDE commands; the prompt follows after -p")
	f.Float(&c.AgentBudgets.PerProjectUSD, "agent-daily-budget-project", "RDEV_AGENT_DAILY_BUDGET_PROJECT", 0, "US dollars agent runs of one project may spend per UTC day, as the agents count it; past it runs are refused (CONFLICT) and each run gets at most what is left as its maxCostUsd (0: no limit)")
	f.Float(&c.AgentBudgets.PerKeyUSD, "agent-daily-budget-key", "RDEV_AGENT_DAILY_BUDGET_KEY", 0, "US dollars agent runs of one API key may spend per UTC day, across projects, as RDEV_AGENT_DAILY_BUDGET_PROJECT (0: no limit)")
	f.String(&c.AgentClaude, "agent-claude-command", "RDEV_AGENT_CLAUDE_COMMAND", "claude", "program (and leading arguments) of Claude Code agent runs (runAgent); rdev adds -p, the stream-json output options, the run's options and the prompt")
}

// agentProtocols returns the registry of the agent protocols runs may use.
func (c *commandConfig) agentProtocols() (*domain.AgentProtocols, error) {
	claude := strings.Fields(c.AgentClaude)
	if len(claude) == 0 {
		return nil, fmt.Errorf("RDEV_AGENT_CLAUDE_COMMAND: must name a program")
	}
	return domain.NewAgentProtocols(domain.NewClaudeCode(claude...)), nil
}

// agentBudgets returns the daily agent budgets, checked.
func (c *commandConfig) agentBudgets() (domain.AgentBudgets, error) {
	for env, v := range map[string]float64{
		"RDEV_AGENT_DAILY_BUDGET_PROJECT": c.AgentBudgets.PerProjectUSD, "RDEV_AGENT_DAILY_BUDGET_KEY": c.AgentBudgets.PerKeyUSD,
	} {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return domain.AgentBudgets{}, fmt.Errorf("%s: must be a number of US dollars, 0 or more, got %g", env, v)
		}
	}
	return c.AgentBudgets, nil
}

func (c *commandConfig) limits() (domain.CommandLimits, error) {
	l := domain.DefaultCommandLimits
	switch {
	case c.Concurrency < 1:
		return l, fmt.Errorf("CONCURRENT_COMMANDS: must be at least 1, got %d", c.Concurrency)
	case c.PerProject < 1:
		return l, fmt.Errorf("RDEV_PER_PROJECT_COMMANDS: must be at least 1, got %d", c.PerProject)
	case c.MaxQueuedPerKey < 0:
		return l, fmt.Errorf("RDEV_MAX_QUEUED_PER_KEY: must not be negative, got %d", c.MaxQueuedPerKey)
	case c.DefaultTimeout <= 0 || c.MaxTimeout < c.DefaultTimeout:
		return l, fmt.Errorf("RDEV_COMMAND_TIMEOUT must be positive and at most RDEV_MAX_COMMAND_TIMEOUT")
	case c.OutputCap < 1024 || c.OutputTail < 0 || c.OutputTail > c.OutputCap:
		return l, fmt.Errorf("RDEV_OUTPUT_CAP must be at least 1024 and RDEV_OUTPUT_TAIL between 0 and it")
	case c.SubscriberBuffer < domain.DefaultOutputConfig.MaxChunk:
		// Less than a chunk would drop a subscriber with any output not
		// yet taken at the next.
		return l, fmt.Errorf("RDEV_SUBSCRIBER_BUFFER: must be at least %d, the largest output chunk, got %d", domain.DefaultOutputConfig.MaxChunk, c.SubscriberBuffer)
	case c.LeaseTTL < time.Second:
		return l, fmt.Errorf("RDEV_LEASE_TTL: must be at least 1s, got %s", c.LeaseTTL)
	case c.OutputHold < 0 || c.FinishGrace < 0:
		return l, fmt.Errorf("RDEV_OUTPUT_HOLD and RDEV_FINISH_GRACE must not be negative")
	}
	claude := strings.Fields(c.ClaudeCommand)
	if len(claude) == 0 {
		return l, fmt.Errorf("RDEV_CLAUDE_COMMAND: must name a program")
	}
	l.Concurrency, l.PerProject, l.MaxQueuedPerKey = c.Concurrency, c.PerProject, c.MaxQueuedPerKey
	l.DefaultTimeout, l.MaxTimeout, l.ClaudeCommand = c.DefaultTimeout, c.MaxTimeout, claude
	l.SubscriberBuffer = c.SubscriberBuffer
	return l, nil
}

func (c *commandConfig) output() domain.OutputConfig {
	return domain.OutputConfig{Cap: int64(c.OutputCap), TailWindow: int64(c.OutputTail), HoldFor: c.OutputHold}
}
