package main

import (
	"os"
	"path/filepath"
	"testing"
)

// The servers that tests start in this process collect garbage as the
// binary's do.
func init() {
	gcSettingsFor(os.Getenv, cgroupRoot).apply()
}

func TestGCSettings(t *testing.T) {
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
		want          gcSettings
	}{
		{"NoCgroup", "", "", nil, gcSettings{percent: defaultGCPercent}},
		{"V2Limit", "memory.max", "536870912\n", nil, gcSettings{percent: defaultGCPercent, limit: 483183820}},
		{"V2Unlimited", "memory.max", "max\n", nil, gcSettings{percent: defaultGCPercent}},
		{"V1Limit", "memory/memory.limit_in_bytes", "1073741824\n", nil, gcSettings{percent: defaultGCPercent, limit: 966367641}},
		{"V1Unlimited", "memory/memory.limit_in_bytes", "9223372036854771712\n", nil, gcSettings{percent: defaultGCPercent}},
		{"Garbled", "memory.max", "lots", nil, gcSettings{percent: defaultGCPercent}},
		{"UsersGOGC", "memory.max", "536870912", map[string]string{"GOGC": "50"}, gcSettings{percent: -1, limit: 483183820}},
		{"UsersGOMEMLIMIT", "memory.max", "536870912", map[string]string{"GOMEMLIMIT": "100MiB"}, gcSettings{percent: defaultGCPercent}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := gcSettingsFor(env(tc.vars), cgroup(t, tc.file, tc.content)); got != tc.want {
				t.Errorf("settings %+v, want %+v", got, tc.want)
			}
		})
	}
}
