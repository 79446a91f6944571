package cpu

import (
	"math"
	"testing"
)

// bnRowValues returns n random values with zeros of both signs, infinities and a NaN among them.
func bnRowValues(seed uint64, n int) []float32 {
	r := newRand(seed)
	s := randSlice(r, n)
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())}
	for i := range s {
		if r.IntN(8) == 0 {
			s[i] = special[r.IntN(len(special))]
		}
	}
	return s
}

// sameFloat reports whether a and b are the same bits, or both NaN (a NaN's payload may differ).
func sameFloat[T float32 | float64](a, b T) bool {
	return a != a && b != b || a == b && math.Signbit(float64(a)) == math.Signbit(float64(b))
}

func sameFloats[T float32 | float64](t *testing.T, what string, n int, got, want []T) {
	t.Helper()
	for i := range want {
		if !sameFloat(got[i], want[i]) {
			t.Fatalf("%s, %d values: element %d is %v, the portable form gives %v", what, n, i, got[i], want[i])
		}
	}
}

// The AVX2 forms of the batch-norm row loops give the bits of the portable forms, for every length
// around their vector widths, with and without the ReLU mask, the shortcut and the shortcut gradient.
func TestBatchNormRowsMatchPortable(t *testing.T) {
	if !bnAVX2 {
		t.Skip("no AVX2")
	}
	defer func() { bnAVX2 = true }()
	for n := 0; n <= 40; n++ {
		x, dy, y, z := bnRowValues(1, n), bnRowValues(2, n), bnRowValues(3, n), bnRowValues(4, n)
		m := n &^ 3
		for _, mask := range []bool{false, true} {
			var ym []float32
			if mask {
				ym = y
			}
			var lanes [2][3][4]float64
			var rows [2][2][]float32
			for v, avx := range []bool{true, false} {
				bnAVX2 = avx
				l := &lanes[v]
				l[0] = [4]float64{1, -2, 3, 0.5}
				sumLanes(&l[0], x[:m])
				sqDevLanes(&l[1], x[:m], 0.25)
				var yl []float32
				if mask {
					yl = y[:m]
				}
				gradLanes(&l[1], &l[2], x[:m], dy[:m], yl, -0.125)
				out, dz := make([]float32, n), make([]float32, n)
				var zz []float32
				if mask {
					zz = z
				}
				normalizeRow(out, x, zz, 0.3, 1.7, -0.2, mask)
				gradRow(dz, x, dy, ym, nil, 0.1, 0.9, 0.05, 1.3)
				if mask {
					d2 := make([]float32, n)
					gradRow(d2, x, dy, ym, dz, 0.1, 0.9, 0.05, 1.3)
					out = append(out, d2...)
				}
				rows[v] = [2][]float32{out, dz}
			}
			for q := range lanes[0] {
				sameFloats(t, "lanes", n, lanes[0][q][:], lanes[1][q][:])
			}
			sameFloats(t, "normalize", n, rows[0][0], rows[1][0])
			sameFloats(t, "grad", n, rows[0][1], rows[1][1])
		}
	}
}
