//go:build cuda

package cuda

// The fused kernels against the CPU reference, run both ways (backend.Options{} and {Unfused: true}), with
// the launch counters proving which path ran. Kernel names are those of kernels.go (FusedKernels,
// UnfusedKernels and the launchers' choices in batchnorm.go and sgd.go).

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"

	"resnet/internal/backend"
)

// fusedPath names the kernels one op must launch on each path.
type fusedPath struct {
	fused, unfused []string
}

// bnPaths are the kernels of the three batch-norm ops for one mode and activation format: the fused path
// is a statistics (or gradient-reduction) kernel and one element-wise kernel with the residual add and the
// ReLU folded in; the unfused path runs each step as its own kernel. Kernels of activations carry the
// format's suffix (the ReLU kernels the dtype's only); bn_inference_params and bn_backward_finalize read
// per-channel operands only and have none.
func bnPaths(relu, residual bool, dt backend.DType, layout backend.Layout) (forward, inference, backward fusedPath) {
	f, d := formatSuffix(dt, layout, true), formatSuffix(dt, layout, false)
	suffix := ""
	var epilogue, prologue []string
	if residual {
		suffix += "_add"
		epilogue = append(epilogue, "residual_add"+f)
	}
	reduce := "bn_backward_reduce"
	if relu {
		suffix += "_relu"
		epilogue = append(epilogue, "relu_forward"+d)
		reduce += "_relu"
		prologue = append(prologue, "relu_backward"+d)
	}
	if residual {
		prologue = append(prologue, "residual_backward"+f)
	}
	forward = fusedPath{
		fused:   []string{"bn_forward_stats" + f, "bn_forward_apply" + suffix + f},
		unfused: append([]string{"bn_stats_partial" + f, "bn_stats_finalize" + f, "bn_normalize" + f}, epilogue...),
	}
	inference = fusedPath{
		fused:   []string{"bn_inference_apply" + suffix + f},
		unfused: append([]string{"bn_inference_params", "bn_normalize" + f}, epilogue...),
	}
	backward = fusedPath{
		fused:   []string{reduce + f, "bn_backward_dx" + suffix + f},
		unfused: append(prologue, "bn_backward_reduce_partial"+f, "bn_backward_finalize", "bn_backward_input"+f),
	}
	return forward, inference, backward
}

// sgdPath: one launch for all parameters, or one per parameter tensor.
var sgdPath = fusedPath{fused: []string{"sgd_step"}, unfused: []string{"sgd_step_single"}}

// launchesSince returns the launch counts since the last reset (after a Sync), failing when the device
// counted nothing at all: then no assertion on them would mean anything.
func launchesSince(t testing.TB, g *Device) map[string]int64 {
	t.Helper()
	mustOK(t, g.Sync())
	counts := g.LaunchCounts()
	if len(counts) == 0 {
		t.Fatalf("LaunchCounts is empty after running an op: the device does not count kernel launches, so the path that ran cannot be proven")
	}
	return counts
}

func formatCounts(c map[string]int64) string {
	var names []string
	for n, k := range c {
		if k > 0 {
			names = append(names, fmt.Sprintf("%s=%d", n, k))
		}
	}
	sort.Strings(names)
	return strings.Join(names, " ")
}

// checkPath asserts that the op launched every kernel of its path, no other kernel of that path's list
// (FusedKernels or UnfusedKernels: a wrong variant), and nothing of the other path's list.
func checkPath(t testing.TB, counts map[string]int64, p fusedPath, unfused bool) {
	t.Helper()
	want, own, other := p.fused, FusedKernels, UnfusedKernels
	if unfused {
		want, own, other = p.unfused, UnfusedKernels, FusedKernels
	}
	for _, k := range want {
		if counts[k] == 0 {
			t.Errorf("kernel %q did not run (launched: %s)", k, formatCounts(counts))
		}
	}
	for _, k := range own {
		if counts[k] != 0 && !slices.Contains(want, k) {
			t.Errorf("kernel %q ran %d times; this op should launch %v (launched: %s)", k, counts[k], want, formatCounts(counts))
		}
	}
	for _, k := range other {
		if counts[k] != 0 {
			t.Errorf("kernel %q of the other path ran %d times (launched: %s)", k, counts[k], formatCounts(counts))
		}
	}
}

// fusedBNCases are the uses of the fused batch-norm kernels in the zoo: the end of a residual unit (ReLU
// after an identity or option-A shortcut), BN+ReLU inside a unit, plain BN (a projection shortcut), and an
// odd shape; plus the residual add without a ReLU, which no model uses but the kernels provide.
var fusedBNCases = []bnCase{
	{n: 8, c: 16, h: 32, w: 32, relu: true, shortcut: identityShortcut},
	{n: 8, c: 32, h: 16, w: 16, relu: true, shortcut: optionAShortcut},
	{n: 8, c: 64, h: 8, w: 8, relu: true, shortcut: optionAShortcut},
	{n: 2, c: 256, h: 56, w: 56, relu: true, shortcut: identityShortcut},
	{n: 2, c: 64, h: 112, w: 112, relu: true},
	{n: 2, c: 2048, h: 7, w: 7},
	{n: 3, c: 6, h: 5, w: 3, relu: true, shortcut: optionAShortcut},
	{n: 4, c: 8, h: 6, w: 6, shortcut: optionAShortcut},
}

func TestFusedBatchNormPaths(t *testing.T) {
	openGPU(t, backend.Options{})
	for i, b := range fusedBNCases {
		for _, m := range gpuModes {
			t.Run(b.String()+"/"+m.name, func(t *testing.T) {
				r := newRig(t, m.opt, uint64(1000+i))
				f := newBNTwins(r, b, nil)
				forward, inference, backward := bnPaths(f.p.ReLU, f.p.Residual, backend.F32, backend.NCHW)
				f.results(r, &[3]fusedPath{forward, backward, inference})
			})
		}
	}
}

// The fused SGD step builds a device table of slot descriptors and caches up to 64 of them by content. A
// loop whose slot lists keep changing (here 70 different prefixes of one list) must evict old tables
// without using a stale one: every step is compared with the CPU.
func TestFusedSGDTableCache(t *testing.T) {
	openGPU(t, backend.Options{})
	for _, m := range gpuModes {
		t.Run(m.name, func(t *testing.T) {
			r := newRig(t, m.opt, 1100)
			const tensors, size = 70, 300
			values, _ := r.random(-1, 1, tensors*size)
			grads, _ := r.random(-1, 1, tensors*size)
			moms, _ := r.random(-0.5, 0.5, tensors*size)
			var slots []sgdTwin
			for i := range tensors {
				off := i * size
				slots = append(slots, sgdTwin{r.view(values, off, size), r.view(grads, off, size), r.view(moms, off, size), 1e-3 * float32(i%3)})
			}
			p := backend.SGDParams{LR: 0.001, Momentum: 0.9, Nesterov: true}
			for round := range 2 { // the second round finds the tables evicted again
				for k := 1; k <= tensors; k++ {
					r.run(fmt.Sprintf("SGDStep round %d over %d slots", round, k), func(d backend.Device, s side) error {
						return d.SGDStep(p, sgdSlots(slots[:k], s))
					})
				}
			}
			r.expect("parameters", values, tolerance{abs: 1e-5, rel: 1e-5})
			r.expect("momentum buffers", moms, tolerance{abs: 1e-5, rel: 1e-5})
		})
	}
}

// checkNetPaths asserts after a whole training step that the device launched kernels of its own path and
// none of the other's.
func checkNetPaths(t testing.TB, g *Device, unfused bool) {
	t.Helper()
	counts := launchesSince(t, g)
	own, other := FusedKernels, UnfusedKernels
	if unfused {
		own, other = UnfusedKernels, FusedKernels
	}
	ran := 0
	for _, k := range own {
		ran += int(counts[k])
	}
	if ran == 0 {
		t.Errorf("the training step launched none of %v (launched: %s)", own, formatCounts(counts))
	}
	for _, k := range other {
		if counts[k] != 0 {
			t.Errorf("kernel %q of the other path ran %d times in the training step (launched: %s)", k, counts[k], formatCounts(counts))
		}
	}
}

// identityBNCases are the batch-norm modes whose fused and unfused results are compared bit for bit: each
// kind of shortcut with and without ReLU, at shapes small enough for the kernel emulator.
var identityBNCases = []bnCase{
	{n: 8, c: 16, h: 32, w: 32, relu: true, shortcut: identityShortcut},
	{n: 8, c: 32, h: 16, w: 16, relu: true, shortcut: optionAShortcut},
	{n: 3, c: 6, h: 5, w: 3, relu: true},
	{n: 4, c: 8, h: 6, w: 6, shortcut: optionAShortcut},
	{n: 2, c: 24, h: 7, w: 7},
}

// The fused and unfused paths share the code of every step of the math (kernels/batchnorm.cu), so on one
// GPU they must give the same bits, not merely values within the CPU tolerance: training forward (output
// and statistics), backward, and inference. Both start from the same seed, and each op starts from the
// CPU reference's results, so their inputs are identical.
func TestFusedAndUnfusedBatchNormAreBitIdentical(t *testing.T) {
	openGPU(t, backend.Options{})
	for i, b := range identityBNCases {
		t.Run(b.String(), func(t *testing.T) {
			var results [2]map[string][]float32
			for k, m := range gpuModes {
				r := newRig(t, m.opt, uint64(1300+i))
				results[k] = newBNTwins(r, b, nil).results(r, nil)
			}
			sameOutputs(t, "fused", results[0], "unfused", results[1])
		})
	}
}

// results runs the training forward, the backward and the inference, each against the CPU, and returns
// every GPU output by name. paths, when set, are asserted to be the kernels that ran.
func (b *bnTwins) results(r *rig, paths *[3]fusedPath) map[string][]float32 {
	r.t.Helper()
	got := map[string][]float32{}
	keep := func(names string, xs ...twin) {
		for j, name := range strings.Fields(names) {
			got[name] = r.host(onGPU, xs[j])
		}
	}
	g := r.gpu
	step := func(k int, op func()) {
		mustOK(r.t, g.Sync())
		g.ResetLaunchCounts()
		op()
		if paths != nil {
			checkPath(r.t, launchesSince(r.t, g), paths[k], g.opt.Unfused)
		}
	}
	step(0, func() { b.forwardTraining(r, bnYTol) })
	keep("forward.y save_mean save_invstd running_mean running_var", b.y, b.saveMean, b.saveInvStd, b.rm, b.rv)
	step(1, func() { b.backward(r) })
	keep("dx dgamma dbeta", b.dx, b.dgamma, b.dbeta)
	if b.p.Residual {
		keep("dz", b.dz)
	}
	step(2, func() { b.inference(r, bnYTol) })
	keep("inference.y", b.y)
	return got
}

// sameOutputs reports every output whose bits differ between two runs named a and b.
func sameOutputs(t *testing.T, a string, ra map[string][]float32, b string, rb map[string][]float32) {
	t.Helper()
	for name, va := range ra {
		if len(rb[name]) != len(va) {
			t.Errorf("%s: %s has %d values, %s %d", name, a, len(va), b, len(rb[name]))
			continue
		}
		sameBits(t, fmt.Sprintf("%s (%s, then %s)", name, a, b), va, rb[name])
	}
}

// firstDifference is the index of the first element whose bits differ, or -1.
func firstDifference(a, b []float32) int {
	if len(a) != len(b) {
		return 0
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i
		}
	}
	return -1
}
