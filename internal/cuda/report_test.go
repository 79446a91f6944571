//go:build cuda && kernelemu

package cuda

import (
	"maps"
	"testing"

	"resnet/internal/backend"
)

// The environment names the GPU, the driver and library versions (the emulator reports fixed ones) and
// the settings the device was opened with.
func TestEnvironmentNamesDeviceLibrariesAndSettings(t *testing.T) {
	t.Setenv(envTF32, "1")
	d := emuDevice(t, backend.Options{Unfused: true, Benchmark: true, Graphs: true})
	want := map[string]string{
		"backend": "cuda", "device": "kernel emulator", "device_ordinal": "0", "compute_capability": "9.0",
		"sm_count": "2", "memory_bytes": "17179869184", "nvidia_driver": "emulated",
		"cuda_driver_version": "13.0", "cuda_runtime_version": "13.0", "cudnn_version": "9.13.0",
		"cublas_version": "13.1.0", "cublas_library": "emulated",
		"deterministic": "true", "benchmark": "true", "fused": "false", "graphs": "true", "tf32": "true",
		"conv_workspace_limit_bytes": "1073741824",
	}
	if got := d.Environment(); !maps.Equal(got, want) {
		t.Errorf("Environment() =\n%v\nwant\n%v", got, want)
	}
	if n := len(d.ConvAlgorithms()); n != 0 {
		t.Errorf("a device that ran no convolution reports %d algorithm choices", n)
	}
}

func TestNVIDIADriverReleaseParse(t *testing.T) {
	for line, want := range map[string]string{
		"NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.65.06  Release Build  (dvs-builder@U16-I3-B07-3-2)  Sun Jul 27 06:54:38 UTC 2025\n": "580.65.06",
		"NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.127.05  Tue Oct  8 03:22:07 UTC 2024\n":                                                      "550.127.05",
	} {
		if m := nvidiaRelease.FindStringSubmatch(line); m == nil || m[1] != want {
			t.Errorf("%q: parsed %q, want %s", line, m, want)
		}
	}
}
