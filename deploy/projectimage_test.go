package deploy

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestExampleProjectImage checks that the example project image installs
// the Claude Code version rdev's tests run (the Makefile's pin), keeps only
// the native program (no Node.js in the final stage), runs as the user the
// example pod runs as, with the HOME the pod gives it; and that the pod runs
// that image.
func TestExampleProjectImage(t *testing.T) {
	makefile, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	pin := regexp.MustCompile(`(?m)^CLAUDE_CODE_VERSION\s*:=\s*(\S+)`).FindSubmatch(makefile)
	if pin == nil {
		t.Fatal("the Makefile pins no CLAUDE_CODE_VERSION")
	}
	version := string(pin[1])
	b, err := os.ReadFile("examples/project/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	dockerfile := string(b)
	if !strings.Contains(dockerfile, "ARG CLAUDE_CODE_VERSION="+version+"\n") {
		t.Errorf("the Dockerfile's CLAUDE_CODE_VERSION is not the Makefile's %s", version)
	}
	stages := strings.Split(dockerfile, "\nFROM ")
	final := stages[len(stages)-1]
	if len(stages) < 3 || !strings.HasPrefix(final, "debian:") {
		t.Fatalf("want a build stage and a final Debian stage, got %d stages, the last FROM %.40q", len(stages)-1, final)
	}
	for _, word := range []string{"npm ", "nodejs", "FROM node"} {
		if strings.Contains(final, word) {
			t.Errorf("the final stage has %q: it should carry the native program only", word)
		}
	}
	if !strings.Contains(final, "/bin/claude.exe /usr/local/bin/claude") {
		t.Error("the final stage does not install the claude program")
	}
	user := regexp.MustCompile(`(?m)^USER (\d+):(\d+)$`).FindStringSubmatch(final)
	home := regexp.MustCompile(`(?m)^ENV HOME=(\S+)`).FindStringSubmatch(final)
	if user == nil || home == nil {
		t.Fatalf("the final stage sets no numeric USER uid:gid (%v) or no HOME (%v)", user, home)
	}

	var pod *corev1.Pod
	for _, o := range render(t, "examples/project") {
		if o.GetKind() == "Pod" {
			pod = convert[corev1.Pod](t, o)
		}
	}
	if pod == nil {
		t.Fatal("no example project pod")
	}
	sc, c := pod.Spec.SecurityContext, pod.Spec.Containers[0]
	if sc == nil || sc.RunAsUser == nil || sc.RunAsGroup == nil ||
		strconv.FormatInt(*sc.RunAsUser, 10) != user[1] || strconv.FormatInt(*sc.RunAsGroup, 10) != user[2] {
		t.Errorf("the pod runs as %+v, the image as %s:%s", sc, user[1], user[2])
	}
	if !strings.HasSuffix(c.Image, ":claude-"+version) {
		t.Errorf("the pod runs image %q, want the example image tagged claude-%s", c.Image, version)
	}
	podHome := ""
	for _, e := range c.Env {
		if e.Name == "HOME" {
			podHome = e.Value
		}
	}
	if podHome != home[1] {
		t.Errorf("the pod's HOME is %q, the image's %q", podHome, home[1])
	}
}
