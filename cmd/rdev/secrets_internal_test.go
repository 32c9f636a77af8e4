package main

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// The start-up errors of serve and migrate never show a password, wherever
// the URL has it.
func TestStartupErrors_HidePasswords(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	_ = ln.Close()
	for _, tt := range []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"ServeUserInfo", map[string]string{"DATABASE_URL": "postgres://rdev:s3cret@" + closed + "/rdev?sslmode=disable"}, []string{"serve"}},
		{"ServePasswordParameter", map[string]string{"DATABASE_URL": "postgres://rdev@" + closed + "/rdev?sslmode=disable&password=s3cret"}, []string{"serve"}},
		{"MigratePasswordParameter", map[string]string{"DATABASE_URL": "postgres://rdev@" + closed + "/rdev?password=s3cret&sslmode=disable"}, []string{"migrate", "up"}},
		{"ServeBadURL", map[string]string{"DATABASE_URL": "postgres://rdev@" + closed + "/rdev?password=s3cret&sslmode=nope"}, []string{"serve"}},
		{"RedisBadURL", map[string]string{"RATE_LIMIT_STORE": "redis", "REDIS_URL": "redis://:s3cret@127.0.0.1:port/0"}, []string{"serve"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"RDEV_DATA_DIR": filepath.Join(t.TempDir(), "data"), "RDEV_WORKSPACE": t.TempDir(),
				"RDEV_HOST": "127.0.0.1", "PORT": "0", "RDEV_EXECUTOR": "local"}
			for k, v := range tt.env {
				env[k] = v
			}
			var stdout, stderr syncBuffer
			code := run(t.Context(), tt.args, cli{getenv: func(k string) string { return env[k] }, stdout: &stdout, stderr: &stderr})
			if code == 0 {
				t.Fatalf("rdev %s succeeded", strings.Join(tt.args, " "))
			}
			if out := stdout.String() + stderr.String(); strings.Contains(out, "s3cret") || out == "" {
				t.Errorf("rdev %s printed %q: want an error, without the password", strings.Join(tt.args, " "), out)
			}
		})
	}
}

// RDEV_SECRETS_BACKEND is database by default, kubernetes only with the
// kube executor, and nothing else.
func TestSecretsConfig_Backend(t *testing.T) {
	for _, tt := range []struct {
		backend, executor, want, err string
	}{
		{"", "local", "database", ""},
		{"database", "kube", "database", ""},
		{"kubernetes", "kube", "kubernetes", ""},
		{"kubernetes", "local", "", "it needs RDEV_EXECUTOR=kube, not local"},
		{"vault", "kube", "", `"vault" is not database or kubernetes`},
	} {
		c := secretsConfig{Backend: tt.backend}
		got, err := c.backend(tt.executor)
		if got != tt.want || (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("backend %q with executor %s: %q, %v; want %q, %q", tt.backend, tt.executor, got, err, tt.want, tt.err)
		}
	}
}
