package main

import (
	"flag"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rdev-hq/rdev/infra/telemetry"
)

// TestREADME_DocumentsEveryVariable checks the README's configuration table
// against what the code reads: every variable `rdev serve` and the client
// subcommands take has a row (with its flag), and every row names a
// variable the code still reads.
func TestREADME_DocumentsEveryVariable(t *testing.T) {
	read := map[string]string{} // variable -> flag
	f := newEnvFlags("serve", func(string) string { return "" }, io.Discard)
	var serve serveConfig
	serve.register(f)
	var conn connFlags
	conn.register(f)
	f.VisitAll(func(fl *flag.Flag) {
		if m := envInUsage.FindStringSubmatch(fl.Usage); m != nil {
			read[m[1]] = "--" + fl.Name
		}
	})
	if len(read) < 20 {
		t.Fatalf("found %d variables in the flags' usage; the pattern no longer matches", len(read))
	}
	// Tracing reads these itself; they have no flags.
	for _, v := range telemetry.TracingVariables {
		read[v] = ""
	}
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(b)
	if i := strings.Index(section, "\n## Configuration"); i >= 0 {
		section = section[i:]
		if j := strings.Index(section[1:], "\n## "); j >= 0 {
			section = section[:j+1]
		}
	} else {
		t.Fatal("README.md has no Configuration section")
	}
	rows := map[string]string{}
	for _, m := range tableRow.FindAllStringSubmatch(section, -1) {
		rows[m[1]] = m[2]
	}
	for _, v := range sortedKeys(read) {
		flagName, ok := rows[v]
		switch {
		case !ok:
			t.Errorf("README's configuration table has no row for %s (%s)", v, read[v])
		case read[v] != "" && !strings.Contains(flagName, read[v]):
			t.Errorf("README's row for %s names flag %q, the code %s", v, flagName, read[v])
		}
	}
	for _, v := range sortedKeys(rows) {
		if _, ok := read[v]; !ok {
			t.Errorf("README documents %s, which the code does not read", v)
		}
	}
}

var (
	envInUsage = regexp.MustCompile(`\(env ([A-Z][A-Z0-9_]*)\)`)
	// | `NAME` | `--flag` | ...
	tableRow = regexp.MustCompile("(?m)^\\| `([A-Z][A-Z0-9_]*)` \\| ([^|]*) \\|")
)

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
