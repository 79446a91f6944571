package cpu

import (
	"fmt"
	"testing"
)

// naiveGemm is C = alpha*op(A)*op(B) + beta*C in float64, the obvious triple loop.
func naiveGemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int,
	beta float32, c []float32, ldc int) []float64 {
	out := make([]float64, len(c))
	for i := range c {
		out[i] = float64(c[i])
	}
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				av := a[i*lda+p]
				if transA {
					av = a[p*lda+i]
				}
				bv := b[p*ldb+j]
				if transB {
					bv = b[j*ldb+p]
				}
				s += float64(av) * float64(bv)
			}
			prev := float64(c[i*ldc+j])
			if beta == 0 {
				prev = 0
			}
			out[i*ldc+j] = float64(alpha)*s + float64(beta)*prev
		}
	}
	return out
}

// testKernels is every kernel this machine can run (each forced explicitly, so the AVX2 kernel is tested on
// an AVX-512 machine too), plus the candidate tiles that are not in use, with a small kc so that modest
// sizes already cross several kc blocks.
func testKernels() []*gemmKernel {
	var ks []*gemmKernel
	for i := range gemmKernels {
		ks = append(ks, &gemmKernels[i])
	}
	for _, k := range candidateKernels(64) {
		ks = append(ks, &k)
	}
	return ks
}

func TestSgemmMatchesNaive(t *testing.T) {
	sizes := [][3]int{{1, 1, 1}, {7, 13, 5}, {65, 33, 129}, {3, 1, 300}, {130, 9, 2}, {2, 4, 513}, {29, 70, 257}, {16, 64, 27}}
	for _, kern := range testKernels() {
		r := newRand(1)
		ws := &gemmScratch{kern: kern}
		for _, sz := range sizes {
			m, n, k := sz[0], sz[1], sz[2]
			for _, transA := range []bool{false, true} {
				for _, transB := range []bool{false, true} {
					for _, ab := range [][2]float32{{1, 0}, {1, 1}, {0.5, -2}} {
						alpha, beta := ab[0], ab[1]
						name := fmt.Sprintf("%s %dx%d kc %d: %dx%dx%d/tA=%v/tB=%v/alpha=%v/beta=%v", kern.name, kern.mr, kern.nr, kern.kc,
							m, n, k, transA, transB, alpha, beta)
						// Leading dimensions larger than the matrices, to catch stride mistakes.
						lda, ldb, ldc := k+3, n+2, n+1
						if transA {
							lda = m + 3
						}
						if transB {
							ldb = k + 2
						}
						a := randSlice(r, max(m, k)*lda)
						b := randSlice(r, max(n, k)*ldb)
						c := randSlice(r, m*ldc)
						want := naiveGemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
						sgemm(ws, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
						assertClose(t, name, c, want, 1e-5, 1e-5*float64(k))
					}
				}
			}
		}
	}
}

// The parallel GEMM must give the bits of the serial one whatever the worker count and tiling.
func TestSgemmParallelBitIdentical(t *testing.T) {
	for i := range gemmKernels {
		kern := &gemmKernels[i]
		r := newRand(2)
		for _, sz := range [][3]int{{65, 33, 129}, {200, 300, 70}, {9, 700, 600}} {
			m, n, k := sz[0], sz[1], sz[2]
			for _, tr := range [][2]bool{{false, false}, {true, true}} {
				lda, ldb := k, n
				if tr[0] {
					lda = m
				}
				if tr[1] {
					ldb = k
				}
				a, b := randSlice(r, m*k), randSlice(r, k*n)
				c0 := randSlice(r, m*n)
				want := append([]float32(nil), c0...)
				sgemm(&gemmScratch{kern: kern}, tr[0], tr[1], m, n, k, 1, a, lda, b, ldb, 1, want, n)
				for _, workers := range []int{1, 3, 8} {
					d := NewWithWorkers(workers)
					d.useGemmKernel(kern)
					got := append([]float32(nil), c0...)
					d.sgemmParallel(tr[0], tr[1], m, n, k, 1, a, lda, b, ldb, 1, got, n)
					assertSameBits(t, fmt.Sprintf("%s %dx%dx%d trans=%v workers=%d", kern.name, m, n, k, tr, workers), got, want)
					d.Close()
				}
			}
		}
	}
}

// beta == 0 must overwrite C without reading it, so NaNs already there do not leak into the result, in
// full tiles and edge tiles alike.
func TestSgemmBetaZeroIgnoresC(t *testing.T) {
	nan := float32(0)
	nan = nan / nan
	for _, kern := range testKernels() {
		ws := &gemmScratch{kern: kern}
		c := []float32{nan, nan, nan, nan}
		sgemm(ws, false, false, 2, 2, 1, 1, []float32{1, 2}, 1, []float32{3, 4}, 2, 0, c, 2)
		assertClose(t, kern.name+" 2x2", c, []float64{3, 4, 6, 8}, 0, 0)

		r := newRand(3)
		m, n, k := 37, 75, 300
		a, b := randSlice(r, m*k), randSlice(r, k*n)
		c = make([]float32, m*n)
		for i := range c {
			c[i] = nan
		}
		want := naiveGemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n)
		sgemm(ws, false, false, m, n, k, 1, a, k, b, n, 0, c, n)
		assertClose(t, fmt.Sprintf("%s %dx%dx%d", kern.name, m, n, k), c, want, 1e-5, 1e-5*float64(k))
	}
}

// On amd64 with AVX2 and FMA the assembly kernels must be in use, not silently replaced by the Go one.
func TestGemmKernelSelection(t *testing.T) {
	if gemmKernelNamed("go") == nil {
		t.Fatal("the portable Go kernel is not in the kernel list")
	}
	want := expectedDefaultKernel()
	if want != "" && gemmDefault.name != want {
		t.Errorf("default GEMM kernel is %q, want %q on this CPU", gemmDefault.name, want)
	}
}
