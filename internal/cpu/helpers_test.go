package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"resnet/internal/backend"
)

// randSlice returns n values uniform in [-1, 1) from a fixed seed.
func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = 2*r.Float32() - 1
	}
	return s
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)) }

// tensor allocates an f32 tensor on d holding vals (zeros when vals is nil).
func tensor(t testing.TB, d *Device, vals []float32, shape ...int) backend.Tensor {
	t.Helper()
	x, err := d.Alloc(backend.Shape(shape), backend.F32, backend.NCHW)
	if err != nil {
		t.Fatal(err)
	}
	if vals != nil {
		if err := d.Upload(x, vals); err != nil {
			t.Fatal(err)
		}
	}
	return x
}

// labelsTensor allocates an i32 tensor holding vals.
func labelsTensor(t testing.TB, d *Device, vals []int32) backend.Tensor {
	t.Helper()
	x, err := d.Alloc(backend.Shape{len(vals)}, backend.I32, backend.NCHW)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.UploadInt32(x, vals); err != nil {
		t.Fatal(err)
	}
	return x
}

// values returns a copy of a tensor's elements.
func values(t testing.TB, x backend.Tensor) []float32 {
	t.Helper()
	v, err := Float32s(x)
	if err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), v...)
}

// assertClose fails when |got - want| > abs + rel*|want| anywhere, naming the worst element.
func assertClose[T float32 | float64](t testing.TB, what string, got []float32, want []T, abs, rel float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d values, want %d", what, len(got), len(want))
	}
	worst, at := 0.0, -1
	for i := range got {
		g, w := float64(got[i]), float64(want[i])
		excess := math.Abs(g-w) - (abs + rel*math.Abs(w))
		if math.IsNaN(g) != math.IsNaN(w) || excess > worst {
			worst, at = excess, i
			if math.IsNaN(excess) {
				break
			}
		}
	}
	if at >= 0 {
		t.Fatalf("%s: element %d is %v, want %v (tolerance %g + %g*|want|)", what, at, got[at], want[at], abs, rel)
	}
}

// assertSameBits fails unless a and b are bit-identical.
func assertSameBits(t testing.TB, what string, a, b []float32) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: lengths %d and %d differ", what, len(a), len(b))
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			t.Fatalf("%s: element %d differs: %v vs %v", what, i, a[i], b[i])
		}
	}
}

func shapeName(s ...int) string { return fmt.Sprint(s) }
