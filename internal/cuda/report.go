//go:build cuda

package cuda

// What the device's results depend on, for the reproducibility record of a run and `resnet bench --json`
// (backend.Reporter).

import (
	"fmt"
	"os"
	"regexp"
	"strconv"

	"resnet/internal/backend"
)

var _ backend.Reporter = (*Device)(nil)

// Environment implements backend.Reporter: the GPU, the driver and libraries, and the settings that
// change results. Keys:
//
//	backend, device, device_ordinal, compute_capability, sm_count, memory_bytes
//	nvidia_driver          the kernel driver's release (/proc/driver/nvidia/version), when readable
//	cuda_driver_version    the CUDA version the driver supports (cuDriverGetVersion)
//	cuda_runtime_version   the CUDA runtime cuDNN was built for (the binary itself uses the driver API)
//	cudnn_version, cublas_version, cublas_library
//	nccl_version           NCCL's (ncclGetVersion), once the device joined a collective group
//	deterministic, benchmark, fused, graphs, tf32   the settings (true or false)
//	conv_workspace_limit_bytes              the cap on one convolution's cuDNN workspace
func (d *Device) Environment() map[string]string {
	i := d.info
	env := map[string]string{
		"backend":                    "cuda",
		"device":                     i.name,
		"device_ordinal":             strconv.Itoa(i.ordinal),
		"compute_capability":         fmt.Sprintf("%d.%d", i.major, i.minor),
		"sm_count":                   strconv.Itoa(i.sms),
		"memory_bytes":               strconv.FormatInt(i.totalMem, 10),
		"cuda_driver_version":        cudaVersion(i.driverVersion),
		"cuda_runtime_version":       cudaVersion(i.cudnnCudart),
		"cudnn_version":              libraryVersion(i.cudnnVersion),
		"cublas_version":             libraryVersion(i.cublasVersion),
		"cublas_library":             i.cublasLib,
		"deterministic":              strconv.FormatBool(!d.opt.Nondeterministic),
		"benchmark":                  strconv.FormatBool(d.opt.Benchmark),
		"fused":                      strconv.FormatBool(!d.opt.Unfused),
		"graphs":                     strconv.FormatBool(d.opt.Graphs),
		"tf32":                       strconv.FormatBool(d.tf32),
		"conv_workspace_limit_bytes": strconv.FormatInt(d.wsLimit, 10),
	}
	if i.nvidiaDriver != "" {
		env["nvidia_driver"] = i.nvidiaDriver
	}
	if v := d.ncclVersion(); v != "" {
		env["nccl_version"] = v
	}
	return env
}

// ConvAlgorithms implements backend.Reporter: the algorithm chosen for each convolution geometry and
// direction so far, in the order they were chosen.
func (d *Device) ConvAlgorithms() []backend.ConvChoice {
	d.reportMu.Lock()
	defer d.reportMu.Unlock()
	return append([]backend.ConvChoice(nil), d.convChoices...)
}

// cudaVersion formats a CUDA version number (1000*major + 10*minor).
func cudaVersion(v int) string { return fmt.Sprintf("%d.%d", v/1000, v%1000/10) }

// libraryVersion formats a cuDNN 9 or cuBLAS version number (10000*major + 100*minor + patch).
func libraryVersion(v int) string { return fmt.Sprintf("%d.%d.%d", v/10000, v%10000/100, v%100) }

// ncclVersionString formats ncclGetVersion's code: 10000*major + 100*minor + patch from 2.9 on,
// 1000*major + 100*minor + patch before (NCCL_VERSION in nccl.h), so 2.8.4 is 2804 and 2.27.7 is 22707.
func ncclVersionString(v int) string {
	if v < 10000 {
		return fmt.Sprintf("%d.%d.%d", v/1000, v%1000/100, v%100)
	}
	return libraryVersion(v)
}

// nvidiaRelease finds the release in /proc/driver/nvidia/version ("NVRM version: NVIDIA UNIX x86_64 Kernel
// Module  550.127.05  Tue Oct ...", or "... UNIX Open Kernel Module for x86_64  580.65.06  Release Build ...").
var nvidiaRelease = regexp.MustCompile(`Kernel Module(?: for \S+)?\s+([0-9][0-9.]*)`)

// nvidiaDriverRelease is the loaded NVIDIA kernel driver's release, or "" where the file is not there (not
// Linux, or a container that does not show it).
func nvidiaDriverRelease() string {
	b, err := os.ReadFile("/proc/driver/nvidia/version")
	if err != nil {
		return ""
	}
	if m := nvidiaRelease.FindSubmatch(b); m != nil {
		return string(m[1])
	}
	return ""
}
