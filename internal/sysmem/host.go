// This file finds how much host memory the process may use, from the files Linux describes it in.

package sysmem

import (
	"bufio"
	"bytes"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// Files are where Linux describes the process's memory; tests point them at fake trees.
type Files struct {
	Cgroup  string // the process's cgroups, one "hierarchy:controllers:path" per line: /proc/self/cgroup
	Root    string // where the cgroup file systems are mounted: /sys/fs/cgroup
	Meminfo string // /proc/meminfo
}

// System are the running kernel's files.
var System = Files{Cgroup: "/proc/self/cgroup", Root: "/sys/fs/cgroup", Meminfo: "/proc/meminfo"}

// HostLimit is System.HostLimit.
func HostLimit() Limit { return System.HostLimit() }

// v1Unlimited: cgroup v1 reports "no limit" as the largest page-aligned int64 (about 8 EiB); any limit
// from here up is none.
const v1Unlimited = 1 << 60

// HostLimit is the memory the process may use: the lowest of its cgroup's memory limit (cgroup v2
// memory.max, or v1 memory.limit_in_bytes, of its cgroup and of every cgroup above it) and the kernel's
// MemAvailable. It is unknown (Bytes 0) where none of them can be read. Unreadable or malformed files count
// as absent.
func (f Files) HostLimit() Limit {
	var best Limit
	consider := func(bytes int64, source string) {
		if bytes > 0 && (!best.Known() || bytes < best.Bytes) {
			best = Limit{Bytes: bytes, Source: source}
		}
	}
	v2, v1, inV1 := f.cgroupPaths()
	if v2 != "" {
		// Mounted at Root on a cgroup-v2 system, at Root/unified on a hybrid one.
		for _, mount := range []string{f.Root, filepath.Join(f.Root, "unified")} {
			consider(lowestLimit(mount, v2, "memory.max", 0), "cgroup memory.max")
		}
	}
	if inV1 {
		consider(lowestLimit(filepath.Join(f.Root, "memory"), v1, "memory.limit_in_bytes", v1Unlimited), "cgroup memory.limit_in_bytes")
	}
	consider(f.memAvailable(), "MemAvailable")
	return best
}

// cgroupPaths reads the process's cgroup-v2 path and its cgroup-v1 memory controller's path.
func (f Files) cgroupPaths() (v2, v1 string, inV1 bool) {
	b, err := os.ReadFile(f.Cgroup)
	if err != nil {
		return "", "", false
	}
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2 = parts[2]
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "memory" {
				v1, inV1 = parts[2], true
			}
		}
	}
	return v2, v1, inV1
}

// lowestLimit reads file in the cgroup folder of path under mount and in every folder above it up to
// mount (a limit of a parent applies to its children; inside a container, the process's own folder is
// often the mount itself), and returns the lowest limit below unlimited (0 for none). "max" means none.
func lowestLimit(mount, cgroup, file string, unlimited int64) int64 {
	var lowest int64
	for p := path.Clean("/" + cgroup); ; p = path.Dir(p) {
		b, err := os.ReadFile(filepath.Join(mount, filepath.FromSlash(p), file))
		if err == nil {
			v, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
			if err == nil && v > 0 && (unlimited == 0 || v < unlimited) && (lowest == 0 || v < lowest) {
				lowest = v
			}
		}
		if p == "/" {
			return lowest
		}
	}
}

// memAvailable is MemAvailable of /proc/meminfo in bytes (0 when it cannot be read).
func (f Files) memAvailable() int64 {
	file, err := os.Open(f.Meminfo)
	if err != nil {
		return 0
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0
		}
		kib, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0
		}
		return Mul(kib, 1024)
	}
	return 0
}
