package cpu

import (
	"os"
	"runtime"
	"strconv"
	"strings"

	"resnet/internal/backend"
)

var _ backend.Reporter = (*Device)(nil)

// Environment implements backend.Reporter. Results depend on the GEMM micro-kernel (the assembly kernels
// round each multiply-add once, with FMA instructions) and on the Go version's code generation; not on the
// worker count (see the package comment). Keys: backend, gemm_kernel (avx512, avx2 or go), workers,
// gomaxprocs, go_version, platform, and cpu (the model name, where /proc/cpuinfo shows it).
func (d *Device) Environment() map[string]string {
	env := map[string]string{
		"backend":     "cpu",
		"gemm_kernel": gemmDefault.name,
		"workers":     strconv.Itoa(d.Workers()),
		"gomaxprocs":  strconv.Itoa(runtime.GOMAXPROCS(0)),
		"go_version":  runtime.Version(),
		"platform":    runtime.GOOS + "/" + runtime.GOARCH,
	}
	if m := cpuModel(); m != "" {
		env["cpu"] = m
	}
	return env
}

// ConvAlgorithms implements backend.Reporter: the CPU has one convolution algorithm per geometry, so
// there is no choice to report.
func (d *Device) ConvAlgorithms() []backend.ConvChoice { return nil }

// cpuModel is the first "model name" of /proc/cpuinfo, or "".
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
