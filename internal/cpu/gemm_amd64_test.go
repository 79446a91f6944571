package cpu

import (
	"fmt"

	xcpu "golang.org/x/sys/cpu"
)

// candidateKernels returns every generated assembly tile this CPU runs, with the given kc.
func candidateKernels(kc int) []gemmKernel {
	var ks []gemmKernel
	for _, t := range asmTiles {
		if t.supported() {
			k := t.kernel(kc)
			k.name = fmt.Sprintf("%s-%dx%d", t.isa, t.mr, t.nr)
			ks = append(ks, k)
		}
	}
	return ks
}

// expectedDefaultKernel is the kernel gemmDefault must be on this CPU.
func expectedDefaultKernel() string {
	switch {
	case xcpu.X86.HasAVX512F:
		return "avx512"
	case xcpu.X86.HasAVX2 && xcpu.X86.HasFMA:
		return "avx2"
	}
	return "go"
}
