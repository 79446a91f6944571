package cpu

import (
	"math"
	"testing"

	"resnet/internal/backend"
)

// The weight gradient is the same bits whether packLanes8 or the portable loop packs its B panels, on the
// test convolutions and on ones with output rows of 8 to 56 positions (whole rows, rows that straddle a
// block of steps, and rows with a tail past a multiple of 8).
func TestPackLanesMatchesPortable(t *testing.T) {
	if !packLanesAVX2 {
		t.Skip("no AVX2")
	}
	defer func() { packLanesAVX2 = true }()
	cases := append([]convCase{
		{n: 2, cin: 16, h: 32, w: 32, cout: 16, k: 3, stride: 1, pad: 1},
		{n: 2, cin: 8, h: 8, w: 8, cout: 40, k: 3, stride: 1, pad: 1},
		{n: 2, cin: 5, h: 14, w: 14, cout: 9, k: 3, stride: 1, pad: 1},
		{n: 1, cin: 4, h: 56, w: 56, cout: 8, k: 3, stride: 1, pad: 1},
	}, convCases...)
	d := New()
	defer d.Close()
	for _, c := range cases {
		r := newRand(3)
		g := max(c.groups, 1)
		oh, ow := (c.h+2*c.pad-c.k)/c.stride+1, (c.w+2*c.pad-c.k)/c.stride+1
		p := backend.ConvParams{Stride: c.stride, Pad: c.pad, Groups: g}
		x := tensor(t, d, randSlice(r, c.n*c.cin*c.h*c.w), c.n, c.cin, c.h, c.w)
		dy := tensor(t, d, randSlice(r, c.n*c.cout*oh*ow), c.n, c.cout, oh, ow)
		var dw [2][]float32
		for v, avx := range []bool{true, false} {
			packLanesAVX2 = avx
			dwt := tensor(t, d, nil, c.cout, c.cin/g, c.k, c.k)
			if err := d.ConvBackwardFilter(p, x, dy, dwt); err != nil {
				t.Fatal(err)
			}
			dw[v] = values(t, dwt)
		}
		for i := range dw[0] {
			if math.Float32bits(dw[0][i]) != math.Float32bits(dw[1][i]) {
				t.Fatalf("%v: dw[%d] = %v with packLanes8, %v without", c, i, dw[0][i], dw[1][i])
			}
		}
	}
}
