package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rdev-hq/rdev/internal/fakeanthropic"
)

// TestE2E_AgentDailyBudget runs the real Claude Code CLI through rdev with
// a daily budget per project: a run within it succeeds, the next is given
// only what is left as its budget and ends OVER_BUDGET, and once the
// budget is spent a run is refused (CONFLICT) before it is queued.
func TestE2E_AgentDailyBudget(t *testing.T) {
	claude, tools := claudeForCommands(t)
	fake, url := fakeanthropic.Start(t)
	// Each turn of the fake costs $0.0008 as the CLI counts it.
	in := newInstance(t, "RDEV_AGENT_CLAUDE_COMMAND="+claude, "RDEV_LOCAL_SANDBOX_READ="+tools, "RDEV_AGENT_DAILY_BUDGET_PROJECT=0.001")
	project := filepath.Join(in.workspace, "demo")
	mustWriteFile(t, filepath.Join(project, "a.txt"), "a\n")
	for p := filepath.Dir(project); p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		mustChmod(t, p, 0o755)
	}
	runner, _ := in.createKey("--name", "runner", "--scopes", "commands:read,commands:write,projects:read")
	s := in.serve()
	cli := &instance{t: t, env: append(append([]string{}, in.env...), "RDEV_SERVER="+s.url, "RDEV_KEY="+runner)}
	agent := func(prompt string) (string, string, int) {
		return cli.cli("agent", "--allowed-tools", "Bash", "--max-turns", "3", "--env", "ANTHROPIC_BASE_URL="+url,
			"--env", "ANTHROPIC_API_KEY=sk-ant-fake", "demo", prompt)
	}

	fake.Script(fakeanthropic.Text("Hello."))
	if out, errs, code := agent("say hello"); code != 0 || !strings.Contains(out, "✓ SUCCEEDED · $0.0008") {
		t.Fatalf("a run within the budget: exit %d:\n%s%s", code, out, errs)
	}
	// $0.0002 left: the first turn passes it.
	fake.Script(fakeanthropic.Tool("", "Bash", map[string]string{"command": "touch spent", "description": "Spend"}))
	if out, errs, code := agent("spend"); code == 0 || !strings.Contains(out, "✗ OVER_BUDGET") {
		t.Errorf("a run given the rest of the budget: exit %d:\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(project, "spent")); err == nil {
		t.Error("the tool call of the turn over budget ran")
	}
	requests := len(fake.Requests())
	out, errs, code := agent("once more")
	if code == 0 || !strings.Contains(errs, "CONFLICT") || !strings.Contains(errs, "project demo has spent $0.0016 of its daily $0.001") {
		t.Errorf("a run once the budget is spent: exit %d, stdout %q, stderr %q; want it refused, CONFLICT", code, out, errs)
	}
	if n := len(fake.Requests()); n != requests {
		t.Errorf("the refused run reached the model API (%d requests, before %d)", n, requests)
	}
}

// TestE2E_AgentDailyBudgetBadValue: a budget that is not a number of
// dollars stops rdev at start-up, naming the variable.
func TestE2E_AgentDailyBudgetBadValue(t *testing.T) {
	for _, v := range []string{"-1", "lots", "NaN"} {
		_, errs, code := newInstance(t, "RDEV_AGENT_DAILY_BUDGET_KEY="+v).cli("serve", "--port", "0")
		if code == 0 || !strings.Contains(errs, "RDEV_AGENT_DAILY_BUDGET_KEY") {
			t.Errorf("RDEV_AGENT_DAILY_BUDGET_KEY=%s: exit %d, stderr %q", v, code, errs)
		}
	}
}
