//go:build !amd64

package cpu

// archGemmKernels returns no assembly kernels: other architectures run the portable Go kernel.
func archGemmKernels() []gemmKernel { return nil }
