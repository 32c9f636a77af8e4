package main_test

import (
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2E_ProjectNetwork drives the real binary: an admin gives project
// demo no network, and a command of demo can no longer reach rdev's own
// HTTP port on 127.0.0.1, while a command of another project still can;
// a key without the admin scope may not change a policy, and bad input
// is refused (a value outside the enum by the schema, as every such
// value is: GRAPHQL_VALIDATION_FAILED) and changes nothing.
func TestE2E_ProjectNetwork(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("needs bash, whose /dev/tcp the commands connect with")
	}
	in := newInstance(t)
	mustWriteFile(t, filepath.Join(in.workspace, "demo", "README.txt"), "demo\n")
	mustWriteFile(t, filepath.Join(in.workspace, "other", "README.txt"), "other\n")
	admin, _ := in.createKey("--name", "admin", "--admin")
	runner, _ := in.createKey("--name", "runner", "--scopes", "commands:read,commands:write,projects:read,secrets:write")
	s := in.serve()
	u, err := url.Parse(s.url)
	if err != nil {
		t.Fatal(err)
	}
	cli := &instance{t: t, env: append(append([]string{}, in.env...), "RDEV_SERVER="+s.url, "RDEV_KEY="+runner)}
	// Connects to rdev's own port, as a command would to abuse the API.
	reach := func(project string) (string, int) {
		t.Helper()
		out, _, code := cli.cli("exec", project, "--", bash, "-c",
			"(exec 3<>/dev/tcp/"+u.Hostname()+"/"+u.Port()+") && echo reached")
		return out, code
	}
	network := func(project string) string {
		t.Helper()
		r := s.query(runner, `query($id: ID!) { project(id: $id) { network } }`, map[string]any{"id": project})
		if len(r.Errors) > 0 {
			t.Fatalf("project.network: %+v", r.Errors)
		}
		n, _ := r.Data["project"].(map[string]any)["network"].(string)
		return n
	}
	const set = `mutation($id: ID!, $n: ProjectNetwork) { setProjectNetwork(input: {projectId: $id, network: $n}) { projectId network } }`

	if out, code := reach("demo"); code != 0 || out != "reached\n" {
		t.Fatalf("before any policy, demo: exit %d, %q; want rdev reached (RDEV_LOCAL_NETWORK=any)", code, out)
	}
	if n := network("demo"); n != "ANY" {
		t.Errorf("demo's network is %q before any policy, want ANY", n)
	}

	if r := s.query(runner, set, map[string]any{"id": "demo", "n": "NONE"}); r.code() != "FORBIDDEN" {
		t.Errorf("setProjectNetwork by a key without admin: %+v, want FORBIDDEN", r.Errors)
	}
	for name, vars := range map[string]map[string]any{
		"UnknownPolicy": {"id": "demo", "n": "SOMETIMES"},
		"NoProjectID":   {"n": "NONE"},
	} {
		if r := s.query(admin, set, vars); r.code() != "GRAPHQL_VALIDATION_FAILED" {
			t.Errorf("%s: %+v, want GRAPHQL_VALIDATION_FAILED", name, r.Errors)
		}
	}
	if r := s.query(admin, set, map[string]any{"id": "nosuch", "n": "NONE"}); r.code() != "NOT_FOUND" {
		t.Errorf("a project that does not exist: %+v, want NOT_FOUND", r.Errors)
	}
	if n := network("demo"); n != "ANY" {
		t.Fatalf("refused changes left demo's network %q", n)
	}

	r := s.query(admin, set, map[string]any{"id": "demo", "n": "NONE"})
	if len(r.Errors) > 0 {
		t.Fatalf("setProjectNetwork NONE: %+v", r.Errors)
	}
	if got, _ := r.Data["setProjectNetwork"].(map[string]any)["network"].(string); got != "NONE" {
		t.Errorf("setProjectNetwork returned %v", r.Data)
	}
	if n := network("demo"); n != "NONE" {
		t.Errorf("demo's network is %q, want NONE", n)
	}
	if out, code := reach("demo"); code == 0 || strings.Contains(out, "reached") {
		t.Errorf("demo with NONE: exit %d, %q; want rdev out of reach", code, out)
	}
	if out, _, code := cli.cli("exec", "demo", "--", "cat", "/proc/net/dev"); code != 0 || !strings.Contains(out, "lo:") || strings.Count(out, ":") != 1 {
		t.Errorf("demo with NONE sees interfaces %q (exit %d), want lo alone", out, code)
	}
	if out, code := reach("other"); code != 0 || out != "reached\n" {
		t.Errorf("other, without a policy: exit %d, %q; want rdev reached", code, out)
	}
	list := s.query(runner, `{ projects(first: 10) { nodes { id network } } }`, nil)
	if len(list.Errors) > 0 {
		t.Fatalf("projects: %+v", list.Errors)
	}
	listed := map[string]any{}
	for _, n := range list.Data["projects"].(map[string]any)["nodes"].([]any) {
		listed[n.(map[string]any)["id"].(string)] = n.(map[string]any)["network"]
	}
	if listed["demo"] != "NONE" || listed["other"] != "ANY" {
		t.Errorf("projects list networks %v, want demo NONE and other ANY", listed)
	}

	if r := s.query(admin, set, map[string]any{"id": "demo", "n": nil}); len(r.Errors) > 0 ||
		r.Data["setProjectNetwork"].(map[string]any)["network"] != "ANY" {
		t.Fatalf("reset: %+v %v", r.Errors, r.Data)
	}
	if out, code := reach("demo"); code != 0 || out != "reached\n" {
		t.Errorf("demo after a reset: exit %d, %q; want rdev reached", code, out)
	}
	out, errs, code := in.cli("audit", "verify")
	if code != 0 {
		t.Errorf("audit verify: exit %d: %s%s", code, out, errs)
	}
	audit := s.query(admin, `{ auditLog(first: 20, filter: {action: "project.network"}) { nodes { action outcome details { key value } } } }`, nil)
	if len(audit.Errors) > 0 {
		t.Fatalf("auditLog: %+v", audit.Errors)
	}
	nodes, _ := audit.Data["auditLog"].(map[string]any)["nodes"].([]any)
	if len(nodes) < 2 {
		t.Errorf("audit log holds %d project.network entries, want the set and the reset (and the refusals): %v", len(nodes), audit.Data)
	}
}

// TestE2E_ProjectNetworkDefault starts rdev with RDEV_LOCAL_NETWORK=loopback:
// commands reach neither rdev nor anything else, but their own servers.
func TestE2E_ProjectNetworkDefault(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("needs bash, whose /dev/tcp the commands connect with")
	}
	in := newInstance(t, "RDEV_LOCAL_NETWORK=loopback")
	mustWriteFile(t, filepath.Join(in.workspace, "demo", "README.txt"), "demo\n")
	admin, _ := in.createKey("--name", "admin", "--admin")
	s := in.serve()
	if !s.waitOutput("network loopback") {
		t.Errorf("the banner does not name the network policy: %s", s.output())
	}
	u, err := url.Parse(s.url)
	if err != nil {
		t.Fatal(err)
	}
	cli := &instance{t: t, env: append(append([]string{}, in.env...), "RDEV_SERVER="+s.url, "RDEV_KEY="+admin)}
	out, _, code := cli.cli("exec", "demo", "--", bash, "-c", "(exec 3<>/dev/tcp/"+u.Hostname()+"/"+u.Port()+") && echo reached")
	if code == 0 || strings.Contains(out, "reached") {
		t.Errorf("with RDEV_LOCAL_NETWORK=loopback: exit %d, %q; want rdev out of reach", code, out)
	}
	r := s.query(admin, `{ project(id: "demo") { network } }`, nil)
	if len(r.Errors) > 0 || r.Data["project"].(map[string]any)["network"] != "LOOPBACK" {
		t.Errorf("project.network: %+v %v, want LOOPBACK", r.Errors, r.Data)
	}
	if _, errs, code := newInstance(t, "RDEV_LOCAL_NETWORK=sometimes").cli("serve", "--port", "0"); code == 0 || !strings.Contains(errs, "RDEV_LOCAL_NETWORK") {
		t.Errorf("a bad RDEV_LOCAL_NETWORK: exit %d, stderr %q", code, errs)
	}
}
