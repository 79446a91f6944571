package cpu

import (
	"math"
	"testing"

	"resnet/internal/backend"
)

// dropoutRun is DropoutForward of x and DropoutBackward of dy on a device with the given worker count.
func dropoutRun(t *testing.T, workers int, p backend.DropoutParams, x, dy []float32, shape ...int) (y, dx []float32) {
	d := NewWithWorkers(workers)
	defer d.Close()
	xt, yt := tensor(t, d, x, shape...), tensor(t, d, make([]float32, len(x)), shape...)
	must(t, d.DropoutForward(p, xt, yt))
	dyt := tensor(t, d, dy, shape...)
	must(t, d.DropoutBackward(p, dyt, dyt)) // in place
	return values(t, yt), values(t, dyt)
}

// The kept count of n elements is Binomial(n, q), q = 1 - Threshold/2^24 (P rounded to 2^-24): its
// deviation from nq is beyond 6 standard deviations sqrt(nq(1-q)) with probability under 2e-9, so a
// correct hash passes and a biased or correlated one (a stuck bit, a mask repeated across layers) fails.
// Two layers' masks agree on an element with probability q^2 + (1-q)^2 if they are independent; the same
// bound holds for that count. Forward and backward draw the same mask: y and dx are 0 at the same
// elements and scaled by the same factor elsewhere, exactly.
func TestDropoutMaskStatistics(t *testing.T) {
	shape := []int{4, 16, 32, 32}
	n := 4 * 16 * 32 * 32
	r := newRand(7)
	x, dy := randSlice(r, n), randSlice(r, n)
	for _, prob := range []float64{0.1, 0.3, 0.5, 0.9} {
		p := backend.DropoutParams{P: prob, Seed: 42, Step: 1000, Layer: 3}
		m := p.Mask()
		q := 1 - float64(m.Threshold)/(1<<24)
		if math.Abs(q-(1-prob)) > 1.0/(1<<25) {
			t.Errorf("p %g: kept fraction %g, want 1-p within 2^-25", prob, q)
		}
		bound := 6 * math.Sqrt(float64(n)*q*(1-q))
		y, dx := dropoutRun(t, 2, p, x, dy, shape...)
		kept := 0
		for i := range y {
			keep := m.Keeps(uint64(i))
			if keep {
				kept++
			}
			wantY, wantDX := float32(0), float32(0)
			if keep {
				wantY, wantDX = x[i]*m.Scale, dy[i]*m.Scale
			}
			if math.Float32bits(y[i]) != math.Float32bits(wantY) || math.Float32bits(dx[i]) != math.Float32bits(wantDX) {
				t.Fatalf("p %g element %d: y %g, dx %g; want %g and %g", prob, i, y[i], dx[i], wantY, wantDX)
			}
		}
		if math.Abs(float64(kept)-float64(n)*q) > bound {
			t.Errorf("p %g: kept %d of %d, want %g +- %g", prob, kept, n, float64(n)*q, bound)
		}
		if m.Scale != float32(1/(1-prob)) {
			t.Errorf("p %g: scale %g", prob, m.Scale)
		}
		// Another layer, another step, another seed: independent masks.
		for _, o := range []backend.DropoutParams{{P: prob, Seed: 42, Step: 1000, Layer: 4},
			{P: prob, Seed: 42, Step: 1001, Layer: 3}, {P: prob, Seed: 43, Step: 1000, Layer: 3}} {
			om, same := o.Mask(), 0
			for i := 0; i < n; i++ {
				if om.Keeps(uint64(i)) == m.Keeps(uint64(i)) {
					same++
				}
			}
			a := q*q + (1-q)*(1-q)
			if math.Abs(float64(same)-float64(n)*a) > 6*math.Sqrt(float64(n)*a*(1-a)) {
				t.Errorf("p %g: %+v agrees with %+v on %d of %d elements, want %g", prob, o, p, same, n, float64(n)*a)
			}
		}
	}
}

// The mask depends on (seed, step, layer, element) only: a second run, another worker count and P = 0
// (every element kept, scale 1: y is x) give the same bits.
func TestDropoutDeterministic(t *testing.T) {
	r := newRand(8)
	x, dy := randSlice(r, 2*5*7*3), randSlice(r, 2*5*7*3)
	p := backend.DropoutParams{P: 0.3, Seed: 1, Step: 12, Layer: 0}
	y1, dx1 := dropoutRun(t, 1, p, x, dy, 2, 5, 7, 3)
	y3, dx3 := dropoutRun(t, 3, p, x, dy, 2, 5, 7, 3)
	y3b, _ := dropoutRun(t, 3, p, x, dy, 2, 5, 7, 3)
	assertSameBits(t, "y, 1 and 3 workers", y1, y3)
	assertSameBits(t, "dx, 1 and 3 workers", dx1, dx3)
	assertSameBits(t, "y, second run", y3, y3b)
	p.P = 0
	y0, dx0 := dropoutRun(t, 2, p, x, dy, 2, 5, 7, 3)
	assertSameBits(t, "y with p 0", y0, x)
	assertSameBits(t, "dx with p 0", dx0, dy)
}

// The hash is fixed: these draws are what kernels/dropout.cu must give too, and what a checkpoint of an
// earlier build resumes with.
func TestDropoutMaskPinned(t *testing.T) {
	m := backend.DropoutParams{P: 0.5, Seed: 1, Step: 2, Layer: 3}.Mask()
	var bits uint32
	for i := 0; i < 32; i++ {
		if m.Keeps(uint64(i)) {
			bits |= 1 << i
		}
	}
	if m.Threshold != 1<<23 || bits != pinnedDropoutBits {
		t.Errorf("threshold %d, mask of elements 0..31 %#08x; want %d and %#08x", m.Threshold, bits, 1<<23, pinnedDropoutBits)
	}
}

const pinnedDropoutBits = 0x1177ea7a
