//go:build cuda

package cuda

// Helpers shared by the GPU tests and benchmarks (the *_gpu_test.go files): opening the device, which skips
// without a GPU and fails under RESNET_REQUIRE_GPU=1 so that a GPU run can never pass by skipping; operands
// uploaded identically to the CPU reference and to the CUDA device; and a comparison with tolerance
// abs + rel*|cpu| that names the worst element.

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"resnet/internal/backend"
	"resnet/internal/cpu"
	"resnet/internal/half"
)

// requireGPUEnv, set to 1, turns every "no GPU" skip into a failure.
const requireGPUEnv = "RESNET_REQUIRE_GPU"

type openedGPU struct {
	dev *Device
	err error
	// fatal marks an error that must fail even without RESNET_REQUIRE_GPU (the device opened but is not
	// what the tests expect).
	fatal bool
}

var (
	gpuMu   sync.Mutex
	gpuDevs = map[backend.Options]openedGPU{}

	cpuOnce sync.Once
	cpuDev  *cpu.Device
)

// sharedGPU opens one CUDA device per option set for the whole test binary: a context and the cuDNN and
// cuBLAS handles cost more to create than most tests take, and ops keep no state between calls that a
// later test could see (the launch counters are reset by the tests that read them).
func sharedGPU(opt backend.Options) openedGPU {
	gpuMu.Lock()
	defer gpuMu.Unlock()
	if o, ok := gpuDevs[opt]; ok {
		return o
	}
	var o openedGPU
	d, err := backend.Open("cuda", opt)
	switch {
	case err != nil:
		o.err = err
	default:
		g, ok := d.(*Device)
		if !ok {
			o.err, o.fatal = fmt.Errorf("backend.Open(%q) returned a %T, want *cuda.Device", "cuda", d), true
		} else {
			o.dev = g
		}
	}
	gpuDevs[opt] = o
	return o
}

// openGPU returns the CUDA device opened with opt. Without a usable GPU it skips the test, unless
// RESNET_REQUIRE_GPU=1 is set: then it fails, so that a run on the GPU machine cannot pass by skipping.
func openGPU(t testing.TB, opt backend.Options) *Device {
	t.Helper()
	o := sharedGPU(opt)
	if o.err == nil {
		return o.dev
	}
	if o.fatal {
		t.Fatalf("cuda: %v", o.err)
	}
	if os.Getenv(requireGPUEnv) == "1" {
		t.Fatalf("no GPU: %v (%s=1 is set, so a missing GPU is a failure, not a skip)", o.err, requireGPUEnv)
	}
	t.Skipf("no GPU: %v", o.err)
	return nil
}

// cpuRef is the CPU reference device, shared by all tests (it is stateless between ops).
func cpuRef() *cpu.Device {
	cpuOnce.Do(func() { cpuDev = cpu.New() })
	return cpuDev
}

func mustOK(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func seededRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)) }

// uniformValues returns n values uniform in [lo, hi).
func uniformValues(r *rand.Rand, n int, lo, hi float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = lo + (hi-lo)*r.Float32()
	}
	return v
}

// side names one of the two devices a rig drives.
type side int

const (
	onCPU side = iota
	onGPU
)

func (s side) String() string {
	if s == onGPU {
		return "cuda"
	}
	return "cpu"
}

// twin is one operand allocated on both devices: c on the CPU, g on the GPU, with the same shape.
type twin struct{ c, g backend.Tensor }

func (x twin) on(s side) backend.Tensor {
	if s == onGPU {
		return x.g
	}
	return x.c
}

func (x twin) shape() backend.Shape { return x.c.Shape }

// withBatch views the first n samples of both tensors.
func (x twin) withBatch(n int) twin { return twin{x.c.WithBatch(n), x.g.WithBatch(n)} }

// rig drives the same op on the CPU reference and the CUDA device with identical operands. Everything it
// allocates is freed when the test ends.
type rig struct {
	t    testing.TB
	cpu  *cpu.Device
	gpu  *Device
	rng  *rand.Rand
	held []twin
}

func newRig(t testing.TB, opt backend.Options, seed uint64) *rig {
	t.Helper()
	r := &rig{t: t, gpu: openGPU(t, opt), cpu: cpuRef(), rng: seededRand(seed)}
	t.Cleanup(r.free)
	return r
}

func (r *rig) dev(s side) backend.Device {
	if s == onGPU {
		return r.gpu
	}
	return r.cpu
}

func (r *rig) free() {
	for _, x := range r.held {
		r.cpu.Free(x.c)
		r.gpu.Free(x.g)
	}
	r.held = nil
}

// alloc allocates a zeroed twin of the given dtype.
func (r *rig) alloc(dt backend.DType, shape ...int) twin {
	r.t.Helper()
	var x twin
	var err error
	if x.c, err = r.cpu.Alloc(backend.Shape(shape), dt, backend.NCHW); err != nil {
		r.t.Fatalf("cpu: Alloc %v: %v", shape, err)
	}
	if x.g, err = r.gpu.Alloc(backend.Shape(shape), dt, backend.NCHW); err != nil {
		r.cpu.Free(x.c)
		r.t.Fatalf("cuda: Alloc %v %v: %v", shape, dt, err)
	}
	r.held = append(r.held, x)
	return x
}

// act allocates a zeroed activation twin: f32 NCHW on the CPU, the device's activation format on the GPU.
func (r *rig) act(shape ...int) twin {
	r.t.Helper()
	dt, layout := r.gpu.ActivationFormat()
	var x twin
	var err error
	if x.c, err = r.cpu.Alloc(backend.Shape(shape), backend.F32, backend.NCHW); err != nil {
		r.t.Fatalf("cpu: Alloc %v: %v", shape, err)
	}
	if x.g, err = r.gpu.Alloc(backend.Shape(shape), dt, layout); err != nil {
		r.cpu.Free(x.c)
		r.t.Fatalf("cuda: Alloc %v %v %v: %v", shape, dt, layout, err)
	}
	r.held = append(r.held, x)
	return x
}

// randomAct allocates an activation twin holding values uniform in [lo, hi), rounded to the GPU's dtype on
// both devices (see set).
func (r *rig) randomAct(lo, hi float32, shape ...int) twin {
	r.t.Helper()
	x := r.act(shape...)
	r.set(x, uniformValues(r.rng, backend.Shape(shape).Numel(), lo, hi))
	return x
}

// zeros allocates a zeroed f32 twin.
func (r *rig) zeros(shape ...int) twin { return r.alloc(backend.F32, shape...) }

// filled allocates an f32 twin holding vals on both devices.
func (r *rig) filled(vals []float32, shape ...int) twin {
	r.t.Helper()
	x := r.zeros(shape...)
	r.set(x, vals)
	return x
}

// random allocates an f32 twin holding values uniform in [lo, hi) and returns them too.
func (r *rig) random(lo, hi float32, shape ...int) (twin, []float32) {
	r.t.Helper()
	v := uniformValues(r.rng, backend.Shape(shape).Numel(), lo, hi)
	return r.filled(v, shape...), v
}

// labels allocates an i32 twin holding vals.
func (r *rig) labels(vals []int32) twin {
	r.t.Helper()
	x := r.alloc(backend.I32, len(vals))
	mustOK(r.t, r.cpu.UploadInt32(x.c, vals))
	mustOK(r.t, r.gpu.UploadInt32(x.g, vals))
	return x
}

// view is the twin of a sub-tensor: shape at element off of base's storage (a parameter inside one big
// allocation, as the model lays them out).
func (r *rig) view(base twin, off int, shape ...int) twin {
	v := base
	v.c.Shape, v.g.Shape = append(backend.Shape(nil), shape...), append(backend.Shape(nil), shape...)
	v.c.Off, v.g.Off = base.c.Off+off, base.g.Off+off
	return v
}

// tail views the samples of x from index from to the end of its first dimension.
func (r *rig) tail(x twin, from int) twin {
	shape := append(backend.Shape(nil), x.shape()...)
	per := shape[1:].Numel()
	shape[0] -= from
	return r.view(x, from*per, shape...)
}

// set uploads vals to both tensors, rounded to the GPU tensor's dtype so that both hold the same values.
func (r *rig) set(x twin, vals []float32) {
	r.t.Helper()
	if x.g.DType != backend.F32 {
		vals = slices.Clone(vals)
		for i, v := range vals {
			vals[i] = half.Round(x.g.DType, v)
		}
	}
	mustOK(r.t, r.cpu.Upload(x.c, vals))
	if err := r.gpu.Upload(x.g, vals); err != nil {
		r.t.Fatalf("cuda: Upload %v: %v", x.g.Shape, err)
	}
}

// mirror copies the CPU tensor's contents to the GPU one, so the next op starts from identical operands
// even when the previous op left them slightly different (each op is tested on its own).
func (r *rig) mirror(xs ...twin) {
	r.t.Helper()
	for _, x := range xs {
		r.set(x, r.host(onCPU, x))
	}
}

// host downloads one side of a twin (after a Sync on the GPU).
func (r *rig) host(s side, x twin) []float32 {
	r.t.Helper()
	v := make([]float32, x.c.Numel())
	if s == onGPU {
		if err := r.gpu.Sync(); err != nil {
			r.t.Fatalf("cuda: Sync: %v", err)
		}
	}
	if err := r.dev(s).Download(v, x.on(s)); err != nil {
		r.t.Fatalf("%v: Download %v: %v", s, x.shape(), err)
	}
	return v
}

// run calls op on the CPU and then on the GPU, failing the test if either returns an error.
func (r *rig) run(name string, op func(d backend.Device, s side) error) {
	r.t.Helper()
	for _, s := range []side{onCPU, onGPU} {
		if err := op(r.dev(s), s); err != nil {
			r.t.Fatalf("%s on %v: %v", name, s, err)
		}
	}
	if err := r.gpu.Sync(); err != nil {
		r.t.Fatalf("cuda: %s: Sync: %v", name, err)
	}
}

// expect compares the GPU result in x with the CPU one and reports (without stopping the test) when some
// element is outside the tolerance.
func (r *rig) expect(what string, x twin, tl tolerance) {
	r.t.Helper()
	if msg := compareValues(r.host(onGPU, x), r.host(onCPU, x), x.shape(), tl); msg != "" {
		r.t.Errorf("%s: %s", what, msg)
	}
}

// tolerance is the allowed error |gpu - cpu| <= abs + rel*|cpu| of one element. With rms set, abs is in units of
// the reference's root mean square: for reductions (convolutions, GEMMs, batch-norm parameter gradients)
// rounding error scales with the size of the summed terms, not with the result, which cancellation can make
// arbitrarily small, and the terms' size is what the RMS of the result measures.
type tolerance struct {
	abs, rel float64
	rms      bool
}

// unitRoundoff is the largest relative error of rounding a float32 to nearest in dt: 2^-8 for bf16 (8
// significant bits), 2^-11 for f16 (11); 0 for f32, whose results are not rounded again.
func unitRoundoff(dt backend.DType) float64 {
	switch dt {
	case backend.BF16:
		return 0x1p-8
	case backend.F16:
		return 0x1p-11
	}
	return 0
}

// rounded widens a tolerance of float32 results for results rounded to dt `roundings` times on the way:
// each rounding moves a value by at most u (unitRoundoff) relative to itself. A final rounding is u
// relative to the result; an intermediate one is u relative to the intermediate, which is bounded by the
// result plus `scale` (the largest magnitude of what is added to it afterwards), hence roundings*u
// relative and (roundings-1)*u*scale absolute. (Subnormal 16-bit results would need an absolute term of
// the smallest subnormal too; the tests' values stay far above.)
func (tl tolerance) rounded(dt backend.DType, roundings int, scale float64) tolerance {
	u := unitRoundoff(dt)
	tl.rel += float64(roundings) * u
	extra := float64(roundings-1) * u * scale
	if tl.rms {
		// abs counts in units of the reference's RMS there; no test passes both.
		extra = 0
	}
	tl.abs += extra
	return tl
}

func (tl tolerance) String() string {
	if tl.rms {
		return fmt.Sprintf("%g*rms + %g*|cpu|", tl.abs, tl.rel)
	}
	return fmt.Sprintf("%g + %g*|cpu|", tl.abs, tl.rel)
}

func rmsOf(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if len(v) == 0 {
		return 0
	}
	return math.Sqrt(s / float64(len(v)))
}

// compare returns "" when every |got - want| is within tl, else a message naming the worst element (by how
// far it exceeds its own tolerance), where it is, both values, and how many elements failed. A NaN or an
// infinity on one side only always fails.
func compareValues(got, want []float32, shape backend.Shape, tl tolerance) string {
	if len(got) != len(want) {
		return fmt.Sprintf("gpu has %d values, cpu %d", len(got), len(want))
	}
	abs := tl.abs
	scale := rmsOf(want)
	if tl.rms {
		abs *= scale
	}
	worst, at, bad := 0.0, -1, 0
	maxDiff := 0.0
	for i := range got {
		g, w := float64(got[i]), float64(want[i])
		diff := math.Abs(g - w)
		if g == w { // equal infinities give a NaN difference
			continue
		}
		excess := diff - (abs + tl.rel*math.Abs(w))
		if math.IsNaN(diff) || math.IsInf(diff, 0) {
			excess = math.Inf(1)
		}
		if diff > maxDiff || math.IsNaN(diff) {
			maxDiff = diff
		}
		if excess > 0 {
			bad++
			if at < 0 || excess > worst {
				worst, at = excess, i
			}
		}
	}
	if at < 0 {
		return ""
	}
	return fmt.Sprintf("%d of %d elements outside tolerance %v; worst at %s: gpu %v, cpu %v (|diff| %.3g, allowed %.3g); "+
		"max |diff| %.3g = %.3g*rms (rms %.3g)",
		bad, len(got), tl, flatIndex(at, shape), got[at], want[at], math.Abs(float64(got[at])-float64(want[at])),
		abs+tl.rel*math.Abs(float64(want[at])), maxDiff, maxDiff/math.Max(scale, 1e-30), scale)
}

// index writes a flat index with its coordinates in shape, e.g. "3 (0, 0, 1, 0)".
func flatIndex(i int, shape backend.Shape) string {
	if len(shape) < 2 || i >= shape.Numel() {
		return fmt.Sprint(i)
	}
	coord := make([]string, len(shape))
	rest := i
	for d := len(shape) - 1; d >= 0; d-- {
		coord[d] = fmt.Sprint(rest % shape[d])
		rest /= shape[d]
	}
	return fmt.Sprintf("%d (%s)", i, strings.Join(coord, ", "))
}
