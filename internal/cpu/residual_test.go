package cpu

import (
	"fmt"
	"testing"
)

// residualCase is a residual add over an (n, c, h, w) output whose shortcut input is (n, cz, hz, wz): the
// identity (cz = c, hz = h), or an option-A shortcut (fewer channels, a stride).
type residualCase struct{ n, c, h, w, cz, hz, wz int }

func (r residualCase) String() string {
	return fmt.Sprintf("%dx%dx%dx%d from %dx%dx%d", r.n, r.c, r.h, r.w, r.cz, r.hz, r.wz)
}

func (r residualCase) bn() bnCase {
	return bnCase{n: r.n, c: r.c, h: r.h, w: r.w, cz: r.cz, hz: r.hz, wz: r.wz}
}

var residualCases = []residualCase{
	{2, 3, 4, 5, 3, 4, 5},   // identity
	{2, 8, 3, 3, 4, 6, 6},   // option A: 4 -> 8 channels, stride 2
	{1, 6, 2, 3, 2, 6, 9},   // stride 3, two zero channels each side
	{3, 4, 1, 1, 4, 2, 2},   // 1x1 output of a stride-2 shortcut
	{2, 5, 3, 3, 5, 3, 3},   // odd channel count, identity
	{0, 4, 2, 2, 4, 2, 2},   // empty batch
	{2, 4, 3, 3, 2, 3, 3},   // channels only
	{2, 16, 7, 7, 16, 7, 7}, // more planes than pieces
}

// naiveResidual is y = a + shortcut(z) and dz = shortcut^T(dy) by the loop over every output element.
func naiveResidual(r residualCase, a, z, dy []float32) (y, dz []float64) {
	b := r.bn()
	y = make([]float64, len(a))
	dz = make([]float64, r.n*r.cz*r.hz*r.wz)
	for n := 0; n < r.n; n++ {
		for c := 0; c < r.c; c++ {
			for h := 0; h < r.h; h++ {
				for w := 0; w < r.w; w++ {
					i := ((n*r.c+c)*r.h+h)*r.w + w
					y[i] = float64(a[i])
					if zi := b.zIndex(n, c, h, w); zi >= 0 {
						y[i] += float64(z[zi])
						dz[zi] += float64(dy[i])
					}
				}
			}
		}
	}
	return y, dz
}

func TestResidualAddMatchesNaive(t *testing.T) {
	for _, workers := range []int{1, 3} {
		d := NewWithWorkers(workers)
		for i, c := range residualCases {
			t.Run(fmt.Sprintf("%d workers %v", workers, c), func(t *testing.T) {
				r := newRand(uint64(40 + i))
				yn, zn := c.n*c.c*c.h*c.w, c.n*c.cz*c.hz*c.wz
				av, zv, dyv, prior := randSlice(r, yn), randSlice(r, zn), randSlice(r, yn), randSlice(r, zn)
				a, z := tensor(t, d, av, c.n, c.c, c.h, c.w), tensor(t, d, zv, c.n, c.cz, c.hz, c.wz)
				y := tensor(t, d, randSlice(r, yn), c.n, c.c, c.h, c.w)
				wantY, wantDZ := naiveResidual(c, av, zv, dyv)
				must(t, d.ResidualAdd(a, z, y))
				// One f32 addition per element: the sum is the exact one rounded, so the bits agree.
				assertClose(t, "y", values(t, y), wantY, 0, 0)
				must(t, d.ResidualAdd(a, z, a)) // in place
				assertClose(t, "y in place", values(t, a), wantY, 0, 0)

				dy := tensor(t, d, dyv, c.n, c.c, c.h, c.w)
				dz := tensor(t, d, randSlice(r, zn), c.n, c.cz, c.hz, c.wz)
				must(t, d.ResidualAddBackward(dy, dz, false))
				assertClose(t, "dz", values(t, dz), wantDZ, 0, 0)
				must(t, d.Upload(dz, prior))
				must(t, d.ResidualAddBackward(dy, dz, true))
				for k := range wantDZ {
					wantDZ[k] = float64(float32(wantDZ[k]) + prior[k])
				}
				assertClose(t, "dz accumulated", values(t, dz), wantDZ, 0, 0)
			})
		}
		d.Close()
	}
}

// TestResidualAddGradients checks the backward against central differences of L = sum(y*r): y is linear
// in a and z, so eps is large and the error is float32 rounding of L (see the file comment of
// gradcheck_test.go).
func TestResidualAddGradients(t *testing.T) {
	d := NewWithWorkers(2)
	defer d.Close()
	for i, c := range []residualCase{residualCases[0], residualCases[1], residualCases[2]} {
		r := newRand(uint64(60 + i))
		yn, zn := c.n*c.c*c.h*c.w, c.n*c.cz*c.hz*c.wz
		a, z := tensor(t, d, randSlice(r, yn), c.n, c.c, c.h, c.w), tensor(t, d, randSlice(r, zn), c.n, c.cz, c.hz, c.wz)
		y := tensor(t, d, nil, c.n, c.c, c.h, c.w)
		rv := randSlice(r, yn)
		yv, _ := Float32s(y)
		loss := func() float64 {
			must(t, d.ResidualAdd(a, z, y))
			return dot64(yv, rv)
		}
		dz := tensor(t, d, nil, c.n, c.cz, c.hz, c.wz)
		must(t, d.ResidualAddBackward(tensor(t, d, rv, c.n, c.c, c.h, c.w), dz, false))
		assertGrad(t, c.String()+" dz", values(t, dz), fdGrad(t, z, 0.05, loss, nil), 1e-3, 1e-3)
		// The gradient of a is dy itself.
		assertGrad(t, c.String()+" da", rv, fdGrad(t, a, 0.05, loss, nil), 1e-3, 1e-3)
	}
}
