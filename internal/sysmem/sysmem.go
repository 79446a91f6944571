// Package sysmem sizes memory: byte counts that saturate instead of overflowing, how much memory the
// process may use (its cgroup's limit, the kernel's MemAvailable, a GPU's free memory), and the check of an
// estimate against that limit, made before anything is allocated.
package sysmem

import (
	"fmt"
	"math"
)

// Saturated stands for a size too large for an int64: Mul and Add return it instead of overflowing, and
// no limit admits it.
const Saturated int64 = math.MaxInt64

// Mul is the product of sizes, or 0 when one of them is <= 0, or Saturated when it overflows.
func Mul(xs ...int64) int64 {
	for _, x := range xs {
		if x <= 0 {
			return 0
		}
	}
	p := int64(1)
	for _, x := range xs {
		if p > Saturated/x {
			return Saturated
		}
		p *= x
	}
	return p
}

// Add is the sum of sizes (negative ones count as 0), or Saturated when it overflows.
func Add(xs ...int64) int64 {
	s := int64(0)
	for _, x := range xs {
		if x <= 0 {
			continue
		}
		if s > Saturated-x {
			return Saturated
		}
		s += x
	}
	return s
}

// Format writes a byte count for people: "512 B", "1.5 KiB", "9.3 TiB".
func Format(b int64) string {
	if b < 1024 {
		return fmt.Sprintf("%d B", b)
	}
	v := float64(b)
	for _, unit := range []string{"KiB", "MiB", "GiB", "TiB", "PiB"} {
		v /= 1024
		if v < 1023.95 {
			return fmt.Sprintf("%.1f %s", v, unit)
		}
	}
	return fmt.Sprintf("%.1f EiB", v/1024)
}

// Limit is an amount of memory that may be used, and where it was read.
type Limit struct {
	Bytes int64 // 0: unknown
	// Source names where the figure comes from: "MemAvailable", "cgroup memory.max", "free GPU memory".
	Source string
}

// Known reports whether the limit was found.
func (l Limit) Known() bool { return l.Bytes > 0 }

func (l Limit) String() string {
	if !l.Known() {
		return "unknown"
	}
	return Format(l.Bytes) + " (" + l.Source + ")"
}
