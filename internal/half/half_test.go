package half

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// nearest is the reference rounding: the value of the finite 16-bit code nearest to f among codes (sorted
// by value, non-negative), ties to the even code, past the largest finite by half an ulp to infinity.
func nearest(f float64, vals []float64, codes []uint16, inf uint16) uint16 {
	a := math.Abs(f)
	i := sort.SearchFloat64s(vals, a)
	var c uint16
	switch {
	case i == len(vals):
		last := len(vals) - 1
		ulp := vals[last] - vals[last-1]
		if a >= vals[last]+ulp/2 {
			c = inf
		} else {
			c = codes[last]
		}
	case vals[i] == a || i == 0:
		c = codes[i]
	default:
		lo, hi := a-vals[i-1], vals[i]-a
		switch {
		case lo < hi:
			c = codes[i-1]
		case hi < lo:
			c = codes[i]
		case codes[i-1]&1 == 0:
			c = codes[i-1]
		default:
			c = codes[i]
		}
	}
	if math.Signbit(f) {
		c |= 0x8000
	}
	return c
}

// finite lists the non-negative finite codes of a 16-bit format and their values, ascending.
func finite(from func(uint16) float32, expMask uint16) ([]float64, []uint16) {
	var vals []float64
	var codes []uint16
	for c := 0; c < 0x8000; c++ {
		if uint16(c)&expMask == expMask {
			continue
		}
		vals = append(vals, float64(from(uint16(c))))
		codes = append(codes, uint16(c))
	}
	return vals, codes
}

func testFormat(t *testing.T, name string, to func(float32) uint16, from func(uint16) float32, expMask, inf uint16) {
	vals, codes := finite(from, expMask)
	if !sort.Float64sAreSorted(vals) {
		t.Fatalf("%s: values are not ascending in code order", name)
	}
	check := func(f float32) {
		t.Helper()
		want := nearest(float64(f), vals, codes, inf)
		if got := to(f); got != want {
			t.Fatalf("%s(%g = %#08x) = %#04x, want %#04x", name, f, math.Float32bits(f), got, want)
		}
	}
	// Every finite code converts back to itself, and every midpoint between neighbours rounds to the even
	// one (the midpoints are exact in float32).
	for i, v := range vals {
		check(float32(v))
		check(-float32(v))
		if i > 0 {
			check(float32((vals[i-1] + v) / 2))
			check(float32(vals[i-1] + (v-vals[i-1])*0.49))
			check(float32(vals[i-1] + (v-vals[i-1])*0.51))
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		f := math.Float32frombits(r.Uint32())
		if f != f {
			if got := to(f); got != 0x7fff {
				t.Fatalf("%s(NaN %#08x) = %#04x, want the canonical 0x7fff", name, math.Float32bits(f), got)
			}
			continue
		}
		check(f)
	}
	for _, f := range []float32{float32(math.Inf(1)), float32(math.Inf(-1)), 0, float32(math.Copysign(0, -1)), math.MaxFloat32, math.SmallestNonzeroFloat32} {
		if math.IsInf(float64(f), 0) {
			if got := from(to(f)); got != f {
				t.Fatalf("%s(%g) widens to %g", name, f, got)
			}
			continue
		}
		check(f)
	}
}

func TestBF16(t *testing.T) { testFormat(t, "ToBF16", ToBF16, FromBF16, 0x7f80, 0x7f80) }

func TestF16(t *testing.T) { testFormat(t, "ToF16", ToF16, FromF16, 0x7c00, 0x7c00) }

// Known codes, as CUDA's conversions give them.
func TestKnownCodes(t *testing.T) {
	for f, want := range map[float32]uint16{1: 0x3c00, 65504: 0x7bff, 65520: 0x7c00, 1e-7: 0x0002, 6e-8: 0x0001,
		3e-8: 0x0001, 2.9e-8: 0x0000, -2: 0xc000, 1.0009765625: 0x3c01, 1.00048828125: 0x3c00} {
		if got := ToF16(f); got != want {
			t.Errorf("ToF16(%g) = %#04x, want %#04x", f, got, want)
		}
	}
	for f, want := range map[float32]uint16{1: 0x3f80, -2: 0xc000, 3.140625: 0x4049, 1.00390625: 0x3f80, 1.01171875: 0x3f82} {
		if got := ToBF16(f); got != want {
			t.Errorf("ToBF16(%g) = %#04x, want %#04x", f, got, want)
		}
	}
}
