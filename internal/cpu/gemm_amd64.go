package cpu

import xcpu "golang.org/x/sys/cpu"

//go:generate go run gemm_gen.go
//go:generate go run filter_gen.go

// asmTile is one generated assembly micro-kernel (gemm_kernels_amd64.go).
type asmTile struct {
	isa    string // "avx2" or "avx512"
	mr, nr int
	fn     func(a, b, c *float32, kc, ldc int, add bool)
	// shifted is fn with step p of B read at b + offs[p] bytes (see gemm_gen.go).
	shifted func(a, b *float32, offs *int, c *float32, kc, ldc int, add bool)
}

// kernel wraps the assembly with the bounds checks that keep it inside its slices.
func (t asmTile) kernel(kc int) gemmKernel {
	mr, nr, k, ks := t.mr, t.nr, t.fn, t.shifted
	return gemmKernel{name: t.isa, mr: mr, nr: nr, kc: kc, kstep: 1,
		fn: func(kc int, a, b, c []float32, ldc int, add bool) {
			_, _, _ = a[kc*mr-1], b[kc*nr-1], c[(mr-1)*ldc+nr-1]
			k(&a[0], &b[0], &c[0], kc, ldc, add)
		},
		shifted: func(a, b []float32, offs shiftOffsets, c []float32, ldc int, add bool) {
			// offs are byte offsets into b; every step reads nr values from one.
			kc := len(offs.offs)
			_, _ = a[kc*mr-1], c[(mr-1)*ldc+nr-1]
			if offs.lo < 0 || offs.hi/4+nr > len(b) {
				panic("cpu: shifted GEMM offset outside its image")
			}
			ks(&a[0], &b[0], &offs.offs[0], &c[0], kc, ldc, add)
		}}
}

// supported reports whether this CPU (and the operating system, which must save the wider registers)
// runs the tile's instruction set.
func (t asmTile) supported() bool {
	switch t.isa {
	case "avx512":
		return xcpu.X86.HasAVX512F
	case "avx2":
		return xcpu.X86.HasAVX2 && xcpu.X86.HasFMA
	}
	return false
}

// The tiles the package uses, one per instruction set (chosen by BenchmarkGemmTiles).
var archTiles = []struct {
	isa    string
	mr, nr int
	kc     int
}{
	{"avx512", 8, 32, 256},
	{"avx2", 6, 16, 256},
}

// narrowTiles are the narrower shifted kernels of archTiles' (convJob.shifted), by instruction set.
var narrowTiles = map[string]struct{ mr, nr int }{"avx512": {16, 16}}

// archGemmKernels returns the assembly kernels this CPU supports, fastest first.
func archGemmKernels() []gemmKernel {
	var ks []gemmKernel
	for _, a := range archTiles {
		for _, t := range asmTiles {
			if t.isa == a.isa && t.mr == a.mr && t.nr == a.nr && t.supported() {
				k := t.kernel(a.kc)
				if n, ok := narrowTiles[a.isa]; ok {
					for _, u := range asmTiles {
						if u.isa == a.isa && u.mr == n.mr && u.nr == n.nr {
							nk := u.kernel(a.kc)
							k.narrow = &nk
						}
					}
				}
				ks = append(ks, k)
			}
		}
	}
	return ks
}
