package cpu

import xcpu "golang.org/x/sys/cpu"

func archFilterKernels() []filterKernel {
	var ks []filterKernel
	if xcpu.X86.HasAVX512F {
		ks = append(ks, filterKernel{32, filter3x3x32AVX512}, filterKernel{16, filter3x3x16AVX512})
	}
	if xcpu.X86.HasAVX2 && xcpu.X86.HasFMA {
		ks = append(ks, filterKernel{8, filter3x3x8AVX2})
	}
	return ks
}
