package backendtest

import (
	"math"
	"testing"

	"resnet/internal/backend"
)

// filled describes one tensor of a FindNonFinite case: n finite, positive values except those set in at.
type filled struct {
	n  int
	at map[int]float32
}

// values are the tensor's contents: 0.25 to 1.25, never 0, with at's values written over them.
func (f filled) values() []float32 {
	v := make([]float32, f.n)
	for i := range v {
		v[i] = 0.25 + float32(i%5)*0.25
	}
	for i, x := range f.at {
		v[i] = x
	}
	return v
}

var (
	nan    = float32(math.NaN())
	posInf = float32(math.Inf(1))
	negInf = float32(math.Inf(-1))
	negZ   = float32(math.Copysign(0, -1))
	// large is more than a grid of any GPU covers at one element per thread (a kernel loops over it).
	large = 1<<20 + 3
)

type findCase struct {
	name        string
	ts          []filled
	nonNegative []bool
	want        int
}

var findCases = []findCase{
	{"empty slice", nil, nil, -1},
	{"all fine", []filled{{1, nil}, {7, nil}, {1000, nil}}, nil, -1},
	{"all fine, non-negative", []filled{{1, nil}, {7, nil}}, []bool{true, true}, -1},
	{"NaN first element", []filled{{13, map[int]float32{0: nan}}}, nil, 0},
	{"+Inf last element", []filled{{13, map[int]float32{12: posInf}}}, nil, 0},
	{"-Inf in the middle", []filled{{1000, map[int]float32{517: negInf}}}, nil, 0},
	{"NaN in the tail past a multiple of 4", []filled{{11, map[int]float32{9: nan}}}, nil, 0},
	{"Inf in a one-element tensor", []filled{{4, nil}, {1, map[int]float32{0: posInf}}}, nil, 1},
	{"negative where allowed", []filled{{9, map[int]float32{3: -2}}}, []bool{false}, -1},
	{"negative where not allowed", []filled{{9, nil}, {9, map[int]float32{8: -2}}}, []bool{false, true}, 1},
	{"negative allowed with nil flags", []filled{{9, map[int]float32{0: -1e30}}}, nil, -1},
	{"-0 is not negative", []filled{{6, map[int]float32{0: negZ, 5: negZ}}}, []bool{true}, -1},
	{"subnormals are finite", []filled{{6, map[int]float32{0: math.SmallestNonzeroFloat32, 1: -math.SmallestNonzeroFloat32,
		2: math.MaxFloat32, 3: -math.MaxFloat32}}}, nil, -1},
	{"a negative subnormal is negative", []filled{{6, map[int]float32{1: -math.SmallestNonzeroFloat32}}}, []bool{true}, 0},
	{"NaN where non-negative", []filled{{5, map[int]float32{2: nan}}}, []bool{true}, 0},
	{"second and third bad", []filled{{100, nil}, {100, map[int]float32{99: nan}}, {100, map[int]float32{0: negInf}}, {3, nil}},
		nil, 1},
	{"empty tensor before a bad one", []filled{{0, nil}, {5, map[int]float32{4: nan}}}, nil, 1},
	{"only empty tensors", []filled{{0, nil}, {0, nil}}, []bool{true, false}, -1},
	{"large, bad at the end", []filled{{large, nil}, {large, map[int]float32{large - 1: posInf}}}, nil, 1},
	{"large, bad at the start", []filled{{large, map[int]float32{0: -1}}}, []bool{true}, 0},
	{"large, all fine", []filled{{large, nil}}, []bool{true}, -1},
}

// RunFindNonFinite checks FindNonFinite of dev on every case: the index of the first bad tensor, for NaN
// and infinities anywhere in a tensor, negative values where they are not allowed, -0 and subnormals
// (which are fine), empty tensors and tensors larger than a GPU's grid.
func RunFindNonFinite(t *testing.T, dev backend.Device) {
	for _, c := range findCases {
		t.Run(c.name, func(t *testing.T) {
			o := &ops{test: t, dev: dev}
			var ts []backend.Tensor
			for _, f := range c.ts {
				x := o.t(f.n)
				if err := dev.Upload(x, f.values()); err != nil {
					t.Fatal(err)
				}
				ts = append(ts, x)
			}
			got, err := dev.FindNonFinite(ts, c.nonNegative)
			if err != nil || got != c.want {
				t.Fatalf("FindNonFinite = %d, %v; want %d", got, err, c.want)
			}
		})
	}
	t.Run("views", func(t *testing.T) { findInViews(t, dev) })
}

// findInViews checks that only the elements a view covers count: a NaN just before and just after a
// view of a buffer is outside it.
func findInViews(t *testing.T, dev backend.Device) {
	o := &ops{test: t, dev: dev}
	buf := o.t(40)
	if err := dev.Upload(buf, filled{40, map[int]float32{0: nan, 39: nan}}.values()); err != nil {
		t.Fatal(err)
	}
	inside := buf
	inside.Shape, inside.Off = backend.Shape{38}, 1
	edge := buf
	edge.Shape, edge.Off = backend.Shape{2, 3}, 34
	for _, c := range []struct {
		ts   []backend.Tensor
		want int
	}{{[]backend.Tensor{inside}, -1}, {[]backend.Tensor{inside, edge}, 1}} {
		if got, err := dev.FindNonFinite(c.ts, nil); err != nil || got != c.want {
			t.Fatalf("FindNonFinite of %d views = %d, %v; want %d", len(c.ts), got, err, c.want)
		}
	}
}
