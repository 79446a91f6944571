//go:build !amd64

package cpu

func archFilterKernels() []filterKernel { return nil }
