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

func TestSgemmMatchesNaive(t *testing.T) {
	r := newRand(1)
	ws := &gemmScratch{}
	sizes := [][3]int{{1, 1, 1}, {7, 13, 5}, {65, 33, 129}, {3, 1, 300}, {130, 9, 2}, {2, 4, 513}}
	for _, sz := range sizes {
		m, n, k := sz[0], sz[1], sz[2]
		for _, transA := range []bool{false, true} {
			for _, transB := range []bool{false, true} {
				for _, ab := range [][2]float32{{1, 0}, {1, 1}, {0.5, -2}} {
					alpha, beta := ab[0], ab[1]
					name := fmt.Sprintf("%dx%dx%d/tA=%v/tB=%v/alpha=%v/beta=%v", m, n, k, transA, transB, alpha, beta)
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

// The parallel GEMM must give the bits of the serial one whatever the worker count and tiling.
func TestSgemmParallelBitIdentical(t *testing.T) {
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
			sgemm(&gemmScratch{}, tr[0], tr[1], m, n, k, 1, a, lda, b, ldb, 1, want, n)
			for _, workers := range []int{1, 3, 8} {
				d := NewWithWorkers(workers)
				got := append([]float32(nil), c0...)
				d.sgemmParallel(tr[0], tr[1], m, n, k, 1, a, lda, b, ldb, 1, got, n)
				assertSameBits(t, fmt.Sprintf("%dx%dx%d trans=%v workers=%d", m, n, k, tr, workers), got, want)
				d.Close()
			}
		}
	}
}

// beta == 0 must overwrite C without reading it, so NaNs already there do not leak into the result.
func TestSgemmBetaZeroIgnoresC(t *testing.T) {
	nan := float32(0)
	nan = nan / nan
	c := []float32{nan, nan, nan, nan}
	sgemm(&gemmScratch{}, false, false, 2, 2, 1, 1, []float32{1, 2}, 1, []float32{3, 4}, 2, 0, c, 2)
	assertClose(t, "c", c, []float64{3, 4, 6, 8}, 0, 0)
}
