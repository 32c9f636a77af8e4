package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
)

// defaultGCPercent is the server's GOGC when the environment sets none. Its
// live heap is small, and most of what it allocates is output on its way
// through (blocks of 256 KiB, garbage once sent and stored): at Go's default
// of 100 a busy command started a collection every few megabytes of output,
// which took a tenth of the CPU that streaming it did.
const defaultGCPercent = 400

// memoryLimitShare is the part of a cgroup's memory limit that the server
// takes as its Go memory limit when the environment sets no GOMEMLIMIT: near
// it the collector runs as often as it must instead of the container being
// killed for the heap room defaultGCPercent allows. The rest is for memory
// Go does not count, such as SQLite's page cache.
const memoryLimitShare = 0.9

// cgroupRoot is where the process's cgroup is mounted.
const cgroupRoot = "/sys/fs/cgroup"

// gcSettings are the collector settings the server runs with.
type gcSettings struct {
	percent int   // GOGC; -1 to leave it as the environment set it
	limit   int64 // GOMEMLIMIT in bytes; 0 to leave it
}

// gcSettingsFor works out the settings for an environment and the memory
// limit of the cgroup under root: GOGC and GOMEMLIMIT, where set, are the
// user's and left alone.
func gcSettingsFor(getenv func(string) string, root string) gcSettings {
	s := gcSettings{percent: -1}
	if getenv("GOGC") == "" {
		s.percent = defaultGCPercent
	}
	if getenv("GOMEMLIMIT") == "" {
		if limit, ok := cgroupMemoryLimit(root); ok {
			s.limit = int64(float64(limit) * memoryLimitShare)
		}
	}
	return s
}

// cgroupMemoryLimit reads the memory limit of the cgroup mounted at root:
// cgroup v2's memory.max, or v1's memory/memory.limit_in_bytes. It reports
// false when there is none, or no cgroup file to read.
func cgroupMemoryLimit(root string) (int64, bool) {
	for _, name := range []string{"memory.max", filepath.Join("memory", "memory.limit_in_bytes")} {
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			continue
		}
		v := string(bytes.TrimSpace(b))
		if v == "max" {
			return 0, false
		}
		n, err := strconv.ParseInt(v, 10, 64)
		// cgroup v1 writes "no limit" as a huge number, the largest
		// page-aligned int64.
		if err != nil || n <= 0 || n >= math.MaxInt64/2 {
			return 0, false
		}
		return n, true
	}
	return 0, false
}

// apply sets the collector to s.
func (s gcSettings) apply() {
	if s.percent >= 0 {
		debug.SetGCPercent(s.percent)
	}
	if s.limit > 0 {
		debug.SetMemoryLimit(s.limit)
	}
}
