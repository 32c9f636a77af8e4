package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/kube"
)

func TestExecutorConfig_Kind(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("KUBECONFIG", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	for _, tt := range []struct {
		name string
		cfg  executorConfig
		want string
	}{
		{"Local", executorConfig{Executor: "local", Kubeconfig: "/some/kubeconfig"}, "local"},
		{"Kube", executorConfig{Executor: "kube"}, "kube"},
		{"AutoNothing", executorConfig{Executor: "auto"}, "local"},
		{"AutoKubeconfigFlag", executorConfig{Executor: "auto", Kubeconfig: "/some/kubeconfig"}, "kube"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.cfg.kind()
			if err != nil || got != tt.want {
				t.Errorf("kind() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}

	t.Run("AutoHomeKubeconfig", func(t *testing.T) {
		if err := os.MkdirAll(filepath.Join(home, ".kube"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(home, ".kube", "config"), []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if got, err := (&executorConfig{Executor: "auto"}).kind(); err != nil || got != "kube" {
			t.Errorf("kind() = %q, %v; want kube", got, err)
		}
	})

	t.Run("ErrUnknown", func(t *testing.T) {
		if _, err := (&executorConfig{Executor: "docker"}).kind(); err == nil {
			t.Error("kind() accepted docker")
		}
	})
}

func TestBreakerHealth(t *testing.T) {
	since := time.Now()
	for _, tt := range []struct {
		state string
		want  domain.ComponentStatus
	}{
		{"closed", domain.ComponentOK},
		{"half-open", domain.ComponentDegraded},
		{"open", domain.ComponentDown},
	} {
		h := breakerHealth(kube.BreakerHealth{Cluster: "https://k8s", State: tt.state, Since: since, RetryIn: 1500 * time.Millisecond, ConsecutiveFailures: 5})
		if h.Status != tt.want || h.Essential || !h.Since.Equal(since) {
			t.Errorf("%s: %+v, want %s, not essential", tt.state, h, tt.want)
		}
		if tt.state == "open" && (h.RetryIn != 1500*time.Millisecond || h.Detail != "API server https://k8s is failing (5 failures in a row): its circuit breaker is open; retry in 2 s") {
			t.Errorf("open: %+v", h)
		}
	}
}
