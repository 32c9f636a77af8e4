package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMemoryLimit(t *testing.T) {
	cgroup := func(t *testing.T, name, content string) string {
		root := t.TempDir()
		if name != "" {
			path := filepath.Join(root, name)
			if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return root
	}
	env := func(vars map[string]string) func(string) string {
		return func(k string) string { return vars[k] }
	}
	for _, tc := range []struct {
		name          string
		file, content string
		vars          map[string]string
		want          int64
	}{
		{"NoCgroup", "", "", nil, 0},
		{"V2Limit", "memory.max", "536870912\n", nil, 483183820},
		{"V2Unlimited", "memory.max", "max\n", nil, 0},
		{"V1Limit", "memory/memory.limit_in_bytes", "1073741824\n", nil, 966367641},
		{"V1Unlimited", "memory/memory.limit_in_bytes", "9223372036854771712\n", nil, 0},
		{"Garbled", "memory.max", "lots", nil, 0},
		{"UsersGOMEMLIMIT", "memory.max", "536870912", map[string]string{"GOMEMLIMIT": "100MiB"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := memoryLimitFor(env(tc.vars), cgroup(t, tc.file, tc.content)); got != tc.want {
				t.Errorf("limit %d, want %d", got, tc.want)
			}
		})
	}
}
