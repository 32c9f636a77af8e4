package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strconv"
)

// memoryLimitShare is the part of a cgroup's memory limit that the server
// takes as its Go memory limit when the environment sets no GOMEMLIMIT: near
// it the collector runs as often as it must, rather than the container being
// killed. The rest is for memory Go does not count, such as SQLite's page
// cache.
const memoryLimitShare = 0.9

// cgroupRoot is where the process's cgroup is mounted.
const cgroupRoot = "/sys/fs/cgroup"

// memoryLimitFor returns the Go memory limit the server takes in an
// environment, in bytes, from the memory limit of the cgroup mounted at
// root; 0 when GOMEMLIMIT is set (the user's choice) or there is no limit.
func memoryLimitFor(getenv func(string) string, root string) int64 {
	if getenv("GOMEMLIMIT") != "" {
		return 0
	}
	limit, ok := cgroupMemoryLimit(root)
	if !ok {
		return 0
	}
	return int64(float64(limit) * memoryLimitShare)
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
