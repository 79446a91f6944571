//go:build !amd64

package cpu

func candidateKernels(int) []gemmKernel { return nil }

func expectedDefaultKernel() string { return "go" }
