//go:build cuda

package cuda

// Convolutions on activations in bf16, f16 and NHWC against the f32 CPU reference, and the device's
// converted copies of the weights they read (filters.go).

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"resnet/internal/backend"
	"resnet/internal/half"
)

// activationFormats are the (dtype, layout) pairs a device may keep its activations in.
var activationFormats = []struct {
	dt     backend.DType
	layout backend.Layout
}{
	{backend.F32, backend.NCHW}, {backend.F32, backend.NHWC},
	{backend.BF16, backend.NCHW}, {backend.BF16, backend.NHWC},
	{backend.F16, backend.NCHW}, {backend.F16, backend.NHWC},
}

// formatCases are small geometries: a strided 3x3 on odd extents, a 1x1, a padded 3x3 with more
// channels, and grouped ones: ResNeXt's 3x3 (groups of 2 channels, and a strided one with 4 to 2), and a
// grouped 1x1. The filter copies are then (Cout, Cin/groups, k, k), KRSC for NHWC.
var formatCases = []struct {
	convCase
	groups int
}{
	{convCase{2, 3, 7, 6, 5, 3, 2, 1}, 1},
	{convCase{2, 8, 6, 6, 16, 1, 1, 0}, 1},
	{convCase{1, 16, 5, 5, 8, 3, 1, 1}, 1},
	{convCase{2, 8, 5, 6, 8, 3, 1, 1}, 4},
	{convCase{2, 12, 7, 5, 6, 3, 2, 1}, 3},
	{convCase{1, 6, 4, 4, 9, 1, 1, 0}, 3},
}

// convTolFor is the tolerance of a convolution whose inputs are exact in dt and whose output is stored in
// dt. The GPU computes g = round_dt(c + e): c the exact result of the exactly representable inputs, e the
// difference between cuDNN's f32 accumulation and the CPU's, which convTol bounds (1e-4*rms, a bound that
// grows with the reduction length through the RMS of the summed terms: see convTol). The CPU gives c up to
// its own f32 rounding, inside the same bound. So |g - c| <= u*|c + e| + |e| <= u*|c| + (1 + u)*|e|, u the
// unit roundoff of dt: rel u, abs convTol's. Half's subnormals (below 2^-14) round with an absolute error
// of at most 2^-25, far inside abs for outputs of RMS O(1). For f32 the output rounding is the
// accumulation's and convTol stands as it is.
func convTolFor(dt backend.DType) tolerance {
	if dt == backend.F32 {
		return convTol
	}
	return tolerance{abs: convTol.abs, rel: unitRoundoff(dt), rms: true}
}

// roundedTo returns v rounded to dt (what a tensor of dt holds of it).
func roundedTo(dt backend.DType, v []float32) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = half.Round(dt, x)
	}
	return out
}

// activation allocates an activation twin: f32 NCHW on the CPU, the GPU device's activation format on the
// GPU. Both hold vals rounded to that format's dtype, uploaded as float32 (N, C, H, W) values.
func (r *rig) activation(vals []float32, shape ...int) twin {
	r.t.Helper()
	x := r.act(shape...)
	dt, _ := r.gpu.ActivationFormat()
	r.set(x, roundedTo(dt, vals))
	return x
}

// randomActivation is activation with values uniform in [lo, hi); it returns them as stored.
func (r *rig) randomActivation(lo, hi float32, shape ...int) (twin, []float32) {
	r.t.Helper()
	dt, _ := r.gpu.ActivationFormat()
	v := roundedTo(dt, uniformValues(r.rng, backend.Shape(shape).Numel(), lo, hi))
	return r.activation(v, shape...), v
}

// filterLaunches is how many filter_to_* and filter_from_* kernels the device has queued since its counts
// were reset.
func filterLaunches(d *Device) (to, from int64) {
	for name, n := range d.LaunchCounts() {
		switch {
		case strings.HasPrefix(name, "filter_to_"):
			to += n
		case strings.HasPrefix(name, "filter_from_"):
			from += n
		}
	}
	return to, from
}

// Every direction in every activation format: Upload float32 NCHW into the device's format, convolve,
// Download, and compare with the CPU convolving the same (rounded) values in f32.
func TestConvFormatsMatchCPU(t *testing.T) {
	for _, f := range activationFormats {
		t.Run(fmt.Sprintf("%v_%v", f.dt, f.layout), func(t *testing.T) {
			opt := formatOptions(f.dt, f.layout, false)
			d := openGPU(t, opt)
			tl := convTolFor(f.dt)
			for i, fc := range formatCases {
				c, wcin := fc.convCase, fc.cin/fc.groups
				t.Run(fmt.Sprintf("%v_g%d", c, fc.groups), func(t *testing.T) {
					r := newRig(t, opt, uint64(300+i))
					d.ResetLaunchCounts()
					x, _ := r.randomActivation(-1, 1, c.n, c.cin, c.h, c.w)
					s := float32(1 / math.Sqrt(float64(wcin*c.k*c.k)))
					w := r.filled(roundedTo(f.dt, uniformValues(r.rng, c.cout*wcin*c.k*c.k, -s, s)), c.cout, wcin, c.k, c.k)
					groupedConvDirections(r, c, fc.groups, x, w, tl)

					// f32 NCHW convolves the table's weights as they are; any other format converts w once
					// (forward and backward data share the copy) and the filter gradient once.
					to, from := filterLaunches(d)
					want := int64(1)
					if f.dt == backend.F32 && f.layout == backend.NCHW {
						want = 0
					}
					if to != want || from != want {
						t.Errorf("filter conversions: %d to the device's format and %d back, want %d and %d (launches %v)",
							to, from, want, want, d.LaunchCounts())
					}
				})
			}
		})
	}
}

// The reproducibility record names the format of each convolution it chose an algorithm for.
func TestConvAlgorithmsRecordFormat(t *testing.T) {
	opt := formatOptions(backend.BF16, backend.NHWC, false)
	r := newRig(t, opt, 11)
	c := convCase{1, 4, 5, 5, 6, 3, 1, 1}
	p := backend.ConvParams{Stride: c.stride, Pad: c.pad}
	x, _ := r.randomActivation(-1, 1, c.n, c.cin, c.h, c.w)
	w, _ := r.random(-1, 1, c.cout, c.cin, c.k, c.k)
	y, _ := r.randomActivation(0, 0, c.n, c.cout, c.oh(), c.ow())
	mustOK(t, r.gpu.ConvForward(p, x.g, w.g, y.g))
	mustOK(t, r.gpu.ConvBackwardFilter(p, x.g, y.g, w.g))
	mustOK(t, r.gpu.Sync())
	seen := map[string]bool{}
	for _, ch := range r.gpu.ConvAlgorithms() {
		g := ch.Geometry
		if g.N != c.n || g.Cin != c.cin || g.Cout != c.cout {
			continue
		}
		seen[ch.Direction] = true
		if g.DType != backend.BF16 || g.Layout != backend.NHWC || !strings.HasSuffix(g.String(), ", bf16 NHWC") {
			t.Errorf("%s: geometry %+v (%q), want bf16 NHWC named in it", ch.Direction, g, g.String())
		}
	}
	if !seen["forward"] || !seen["backward_filter"] {
		t.Errorf("ConvAlgorithms recorded %v, want forward and backward_filter", seen)
	}
}

// A weight's converted copy follows every write to the weight (Upload, Zero, Copy, SGDStep) and is not
// made again when nothing wrote it, nor when a write touches only its neighbours in the same buffer. The
// weight is a view at an odd element offset into one allocation, as parameters are.
func TestConvFilterCopyFollowsWrites(t *testing.T) {
	const dt, layout = backend.BF16, backend.NHWC
	opt := formatOptions(dt, layout, false)
	r := newRig(t, opt, 12)
	d := r.gpu
	c := convCase{2, 4, 6, 5, 6, 3, 1, 1}
	p := backend.ConvParams{Stride: c.stride, Pad: c.pad}
	wn := c.cout * c.cin * c.k * c.k
	const before, after = 3, 5 // neighbours' elements
	table := r.zeros(before + wn + after)
	w := r.view(table, before, c.cout, c.cin, c.k, c.k)
	left, right := r.view(table, 0, before), r.view(table, before+wn, after)
	x, _ := r.randomActivation(-1, 1, c.n, c.cin, c.h, c.w)
	y, _ := r.randomActivation(0, 0, c.n, c.cout, c.oh(), c.ow())
	dy, _ := r.randomActivation(-1, 1, c.n, c.cout, c.oh(), c.ow())
	dx, _ := r.randomActivation(0, 0, c.n, c.cin, c.h, c.w)
	s := float32(1 / math.Sqrt(float64(c.cin*c.k*c.k)))
	weights := func() []float32 { return roundedTo(dt, uniformValues(r.rng, wn, -s, s)) }
	tl := convTolFor(dt)

	// check runs forward and backward data, compares both with the CPU, and counts the conversions.
	check := func(when string, wantTo int64) {
		t.Helper()
		d.ResetLaunchCounts()
		r.run("ConvForward", func(d backend.Device, s side) error { return d.ConvForward(p, x.on(s), w.on(s), y.on(s)) })
		r.run("ConvBackwardData", func(d backend.Device, s side) error {
			return d.ConvBackwardData(p, dy.on(s), w.on(s), dx.on(s), false)
		})
		r.expect(when+": forward y", y, tl)
		r.expect(when+": backward data dx", dx, tl)
		if to, _ := filterLaunches(d); to != wantTo {
			t.Errorf("%s: %d filter conversions, want %d", when, to, wantTo)
		}
	}
	// sameOnCPU gives the CPU the weight the GPU convolves with: the GPU's f32 weight rounded to dt.
	sameOnCPU := func() {
		t.Helper()
		mustOK(t, r.cpu.Upload(w.c, roundedTo(dt, r.host(onGPU, w))))
	}

	r.set(w, weights())
	check("first use", 1)
	check("nothing changed", 0)

	mustOK(t, d.Zero(left.g))
	mustOK(t, r.cpu.Zero(left.c))
	mustOK(t, d.Upload(right.g, []float32{1, 2, 3, 4, 5}))
	check("neighbours written", 0)

	r.set(w, weights())
	check("after Upload", 1)

	src := r.filled(weights(), c.cout, c.cin, c.k, c.k)
	r.run("Copy", func(d backend.Device, s side) error { return d.Copy(w.on(s), src.on(s)) })
	check("after Copy", 1)

	grad, _ := r.random(-1, 1, c.cout, c.cin, c.k, c.k)
	r.run("SGDStep", func(d backend.Device, s side) error {
		return d.SGDStep(backend.SGDParams{LR: 0.1}, []backend.SGDSlot{{Param: w.on(s), Grad: grad.on(s)}})
	})
	sameOnCPU()
	check("after SGDStep", 1)

	r.run("Zero", func(d backend.Device, s side) error { return d.Zero(w.on(s)) })
	check("after Zero", 1)

	// A filter gradient written into the weight's own storage is a write too.
	r.run("ConvBackwardFilter", func(d backend.Device, s side) error {
		return d.ConvBackwardFilter(p, x.on(s), dy.on(s), w.on(s))
	})
	sameOnCPU()
	check("after ConvBackwardFilter into w", 1)

	// Freeing the buffer hands the copy back.
	b := table.g.Buf.(*buffer)
	if len(b.filters) != 1 {
		t.Fatalf("the table holds %d converted copies, want 1", len(b.filters))
	}
	copyBytes := b.filters[0].blk.class
	inUse := d.MemStats().InUse
	d.Free(table.g)
	if len(b.filters) != 0 {
		t.Errorf("after Free the buffer still holds %d converted copies", len(b.filters))
	}
	if _, ok := d.filterBufs[b]; ok {
		t.Error("after Free the device still lists the buffer among those with converted copies")
	}
	if got, want := d.MemStats().InUse, inUse-copyBytes-b.blk.class; got != want {
		t.Errorf("after Free %d bytes are in use, want %d (the table's %d and its copy's %d bytes handed back)",
			got, want, b.blk.class, copyBytes)
	}
}
