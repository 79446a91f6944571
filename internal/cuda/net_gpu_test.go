//go:build cuda

package cuda

// Whole networks through internal/model: the same weights and batch on the CPU reference and on the GPU
// (fused and unfused), one training step compared tensor by tensor, and a 200-step run whose loss curves
// must track.

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"resnet/internal/backend"
	"resnet/internal/dataset"
	"resnet/internal/model"
)

// gpuModes are the two ways the CUDA device runs fused ops.
var gpuModes = []struct {
	name string
	opt  backend.Options
}{
	{"fused", backend.Options{}},
	{"unfused", backend.Options{Unfused: true}},
}

// netState is what one training step of a net leaves behind, downloaded to the host.
type netState struct {
	loss    float64 // mean over the batch
	logits  []float32
	tensors map[string][]float32 // "name.grad" for gradients, the parameter name for values
}

func buildNet(t testing.TB, dev backend.Device, spec model.Spec, batch int) *model.Net {
	t.Helper()
	n, err := model.Build(dev, spec, batch)
	if err != nil {
		t.Fatalf("%s: building %s (batch %d): %v", dev.Name(), spec.Name, batch, err)
	}
	t.Cleanup(n.Free)
	return n
}

// randomBatch is N(0, 1) images and uniform labels from seed.
func randomBatch(spec model.Spec, batch int, seed uint64) ([]float32, []int32) {
	r := seededRand(seed)
	x := make([]float32, batch*spec.InChannels*spec.InputSize*spec.InputSize)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	y := make([]int32, batch)
	for i := range y {
		y[i] = int32(r.IntN(spec.NumClasses))
	}
	return x, y
}

// download reads every parameter-table tensor of net, plus the gradients of the trainable ones.
func downloadNet(t testing.TB, net *model.Net, withGrads bool) map[string][]float32 {
	t.Helper()
	dev := net.Device()
	mustOK(t, dev.Sync())
	out := map[string][]float32{}
	for _, p := range net.Params {
		v := make([]float32, p.Shape.Numel())
		mustOK(t, dev.Download(v, p.Value))
		out[p.Name] = v
		if withGrads && p.Kind.Trainable() {
			g := make([]float32, p.Shape.Numel())
			mustOK(t, dev.Download(g, p.Grad))
			out[p.Name+".grad"] = g
		}
	}
	return out
}

// sgd is the update the network tests apply: torchvision's ImageNet recipe.
var netSGD = backend.SGDParams{LR: 0.1, Momentum: 0.9}

// trainStep runs one forward/backward on net, records it, applies one SGD step and records the values.
func trainStep(t testing.TB, net *model.Net, x []float32, y []int32) (step, updated netState) {
	t.Helper()
	return trainStepScaled(t, net, x, y, 1)
}

// trainStepScaled is trainStep with the loss scaled by lossScale for the backward pass; the recorded
// gradients are unscaled (divided by lossScale, exact for a power of two) and SGD divides it out.
func trainStepScaled(t testing.TB, net *model.Net, x []float32, y []int32, lossScale float32) (step, updated netState) {
	t.Helper()
	res, err := net.TrainStepScaled(x, y, lossScale)
	if err != nil {
		t.Fatalf("%s: TrainStep: %v", net.Device().Name(), err)
	}
	step.loss = res.LossSum / float64(res.N)
	if step.logits, err = net.Logits(nil); err != nil {
		t.Fatal(err)
	}
	step.tensors = downloadNet(t, net, true)
	for name, v := range step.tensors {
		if strings.HasSuffix(name, ".grad") {
			for i := range v {
				v[i] /= lossScale
			}
		}
	}
	sgd := netSGD
	sgd.GradScale = 1 / lossScale
	if err := net.Device().SGDStep(sgd, net.SGDSlots(1e-4, true)); err != nil {
		t.Fatalf("%s: SGDStep: %v", net.Device().Name(), err)
	}
	updated.tensors = downloadNet(t, net, false)
	return step, updated
}

// tensorDiff is how far one GPU tensor is from the CPU's, as a fraction of what the check allows.
type tensorDiff struct {
	name          string
	diff, allowed float64 // ||gpu - cpu|| and the bound on it
	norm          float64 // ||cpu||
}

// ratio is diff/allowed: above 1 fails.
func (d tensorDiff) ratio() float64 {
	switch {
	case d.diff == 0:
		return 0
	case d.allowed == 0:
		return math.Inf(1)
	}
	return d.diff / d.allowed
}

func (d tensorDiff) String() string {
	return fmt.Sprintf("%s: ||gpu-cpu|| %.3g, ||cpu|| %.3g (ratio %.2g), allowed %.3g",
		d.name, d.diff, d.norm, d.diff/math.Max(d.norm, 1e-30), d.allowed)
}

func l2(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

func l2diff(a, b []float32) float64 {
	var s float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		s += d * d
	}
	return math.Sqrt(s)
}

// checkTensors compares named tensors by norm: ||gpu - ref|| <= rel*||scale|| + abs, where scale is
// ref itself, or ref - base when base is given (the size of an update rather than of the values).
// It fails naming the worst tensor and logs the five worst.
func checkTensors(t testing.TB, what string, names []string, gpu, ref, base map[string][]float32, rel, abs float64) {
	t.Helper()
	var diffs []tensorDiff
	for _, name := range names {
		g, c := gpu[name], ref[name]
		if len(g) != len(c) {
			t.Fatalf("%s %s: gpu has %d values, cpu %d", what, name, len(g), len(c))
		}
		scale := c
		if base != nil {
			scale = make([]float32, len(c))
			for i := range c {
				scale[i] = c[i] - base[name][i]
			}
		}
		d := tensorDiff{name: name, diff: l2diff(g, c), norm: l2(scale)}
		if base != nil {
			d.allowed = rel*d.norm + 1e-6*l2(base[name]) + abs // plus float32 rounding of the values
		} else {
			d.allowed = rel*d.norm + abs
		}
		if math.IsNaN(d.diff) {
			d.diff = math.Inf(1)
		}
		diffs = append(diffs, d)
	}
	sort.SliceStable(diffs, func(i, j int) bool { return diffs[i].ratio() > diffs[j].ratio() })
	var worst []string
	for _, d := range diffs[:min(5, len(diffs))] {
		worst = append(worst, "  "+d.String())
	}
	t.Logf("%s: %d tensors, the five closest to their bound:\n%s", what, len(diffs), strings.Join(worst, "\n"))
	bad := 0
	for _, d := range diffs {
		if d.diff > d.allowed {
			bad++
		}
	}
	if bad > 0 {
		// Every failing tensor in network order: the last one in that order is where the backward pass
		// first went wrong, the earlier ones may only inherit its error.
		var lines []string
		for _, name := range names {
			for _, d := range diffs {
				if d.name == name && d.diff > d.allowed {
					lines = append(lines, "  "+d.String())
				}
			}
		}
		t.Errorf("%s: %d of %d tensors outside ||gpu-cpu|| <= %g*||cpu|| + %g; worst %v; all failing, in network order:\n%s",
			what, bad, len(diffs), rel, abs, diffs[0], strings.Join(lines, "\n"))
	}
}

// netCase is one network compared step for step, with its tolerances (relative, on tensor norms).
//
// A whole training step cannot be held to the precision of its ops. A ReLU whose input lies within
// rounding of 0 falls on different sides on the two devices; that changes one element of an activation
// gradient by O(its typical size), and every weight gradient below it by about 1/sqrt(elements of that
// activation). Measured on the CPU reference alone, perturbing the input by 1e-7 relative (so the two runs
// differ only by rounding-sized amounts, as the GPU and CPU do): cifar_resnet20 at batch 8 moves its
// gradients by at most 2.2e-6 (no flip), ResNet-50 at batch 2 by 1.7% (median) to 2.1% (max) at 224x224 and
// by 4.4% to 7.2% at 64x64, in almost every tensor; the kernel emulator of internal/cuda/kernelemu shows
// the same figures against the CPU (1.9% at 224, 6.1% at 64). The gradient bounds sit a few times above
// that floor; an integration bug (a missed accumulation, a wrong view, a stale buffer) is off by O(1).
// The forward is amplified much less (loss 1e-6, running statistics 1e-5 apart at 224), except through
// ResNet-50's 2x2 last stage at 64x64 (logits up to 3e-4*rms apart).
type netCase struct {
	name         string
	model        string
	batch, input int
	fwdRel       float64 // loss, logits (in units of their RMS) and running statistics
	gradRel      float64 // gradients, and parameter updates relative to the update's size
}

func TestNetworkStepMatchesCPU(t *testing.T) {
	openGPU(t, backend.Options{})
	cases := []netCase{{"cifar_resnet20", "cifar_resnet20", 8, 32, 1e-4, 1e-2}}
	if testing.Short() {
		// The CPU side of a 224x224 ResNet-50 step takes ~10 s on two cores.
		cases = append(cases, netCase{"resnet50_64px", "resnet50", 2, 64, 1e-3, 0.25})
	} else {
		cases = append(cases, netCase{"resnet50", "resnet50", 2, 224, 1e-4, 0.1})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec, err := model.Lookup(c.model)
			mustOK(t, err)
			spec.InputSize = c.input
			x, y := randomBatch(spec, c.batch, 31)
			const seed = 17

			before, cpuStep, cpuUpdated, gradNames, valueNames, statNames := cpuReferenceStep(t, spec, c.batch, seed, x, y)
			for _, m := range gpuModes {
				t.Run(m.name, func(t *testing.T) {
					g := openGPU(t, m.opt)
					net := buildNet(t, g, spec, c.batch)
					mustOK(t, net.Init(seed))
					checkTensors(t, "initial parameters", valueNames, downloadNet(t, net, false), before, nil, 0, 0)
					g.ResetLaunchCounts()
					step, updated := trainStep(t, net, x, y)
					checkNetPaths(t, g, m.opt.Unfused)
					t.Logf("loss: gpu %.7f, cpu %.7f", step.loss, cpuStep.loss)
					if d := math.Abs(step.loss - cpuStep.loss); d > c.fwdRel*math.Abs(cpuStep.loss) {
						t.Errorf("loss: gpu %.7f, cpu %.7f (|diff| %.3g > %g relative)", step.loss, cpuStep.loss, d, c.fwdRel)
					}
					if msg := compareValues(step.logits, cpuStep.logits, backend.Shape{c.batch, spec.NumClasses},
						tolerance{abs: c.fwdRel, rel: c.fwdRel, rms: true}); msg != "" {
						t.Errorf("logits: %s", msg)
					}
					checkTensors(t, "running statistics after the forward", statNames, step.tensors, cpuStep.tensors, nil, c.fwdRel, 1e-7)
					checkTensors(t, "gradients", gradNames, step.tensors, cpuStep.tensors, nil, c.gradRel, 1e-6)
					checkTensors(t, "parameters after one SGD step (relative to the update)", valueNames,
						updated.tensors, cpuUpdated.tensors, before, c.gradRel, 1e-7)
				})
			}
		})
	}
}

// cpuReferenceStep builds spec on the CPU reference, initialises it with seed and runs trainStep on (x, y):
// the parameters before, the step and the updated parameters, and the names of the gradients, the
// trainable parameters and the running statistics, in network order.
func cpuReferenceStep(t testing.TB, spec model.Spec, batch int, seed int64, x []float32, y []int32) (
	before map[string][]float32, step, updated netState, gradNames, valueNames, statNames []string) {
	t.Helper()
	ref := buildNet(t, cpuRef(), spec, batch)
	defer ref.Free()
	mustOK(t, ref.Init(seed))
	before = downloadNet(t, ref, false)
	step, updated = trainStep(t, ref, x, y)
	for _, p := range ref.Params {
		if p.Kind.Trainable() {
			gradNames = append(gradNames, p.Name+".grad")
			valueNames = append(valueNames, p.Name)
		} else {
			statNames = append(statNames, p.Name)
		}
	}
	return before, step, updated, gradNames, valueNames, statNames
}

// TestTrainingCurvesTrack trains cifar_resnet20 for 200 steps of batch 32 on the synthetic data set, the
// same batches in the same order on both devices, and requires the GPU's loss curve to track the CPU's.
//
// Two runs of this training cannot be compared over 200 steps as they are: the loss sits on a plateau
// near ln 10 and then drops, and when it drops is chaotic. Two CPU runs whose inputs differ by 1e-7
// relative stay within 0.5% of each other for 20 steps but end up to 30% apart at step 200 (measured
// with two perturbations: 2.4% and 31% over the last 20 steps). So the GPU restarts every 20 steps from
// the CPU's state (parameters, running statistics, momentum buffers) and trains the window from there:
// each window checks 20 steps of the GPU's own training, the momentum horizon several times over, and
// the CPU curve is one uninterrupted run. (A second CPU device standing in for the GPU, with every upload
// perturbed by 1e-7 relative, stays within 0.12% of the reference in every window that way.) Required:
// each window's mean loss within 5% of the CPU's, the
// final loss (mean of the last 5 steps) within 10%, and the CPU run learning (last window below 90% of the
// first), without which the comparison would mean little.
func TestTrainingCurvesTrack(t *testing.T) {
	gpu := openGPU(t, backend.Options{})
	if testing.Short() {
		t.Skip("200 training steps on the CPU reference; run without -short")
	}
	const (
		steps  = 200
		batch  = 32
		window = 20
		seed   = 5
	)
	spec, err := model.Lookup("cifar_resnet20")
	mustOK(t, err)
	src, err := dataset.NewSynthetic(seed, steps*batch, dataset.SplitTrain)
	mustOK(t, err)
	norm, err := dataset.ComputeNormalization(src, 2000)
	mustOK(t, err)
	pipe, err := dataset.SourcePipeline(src, false, norm)
	mustOK(t, err)
	worker := pipe.NewWorker()
	c, h, w := pipe.OutputShape()
	img := c * h * w
	x := make([]float32, batch*img)
	y := make([]int32, batch)
	noAugment := rand.New(rand.NewPCG(0, 0)) // unused without augmentation
	loadBatch := func(step int) {
		for i := range batch {
			label, err := worker.Load(step*batch+i, noAugment, x[i*img:(i+1)*img])
			mustOK(t, err)
			y[i] = int32(label)
		}
	}

	nets := []*model.Net{buildNet(t, cpuRef(), spec, batch), buildNet(t, gpu, spec, batch)}
	curves := [2][]float64{}
	sgdParams := backend.SGDParams{LR: 0.05, Momentum: 0.9}
	mustOK(t, nets[0].Init(seed))
	for step := range steps {
		if step%window == 0 {
			copyTrainingState(t, nets[1], nets[0])
		}
		loadBatch(step)
		for k, n := range nets {
			res, err := n.TrainStep(x, y)
			if err != nil {
				t.Fatalf("%s step %d: %v", n.Device().Name(), step, err)
			}
			if err := n.Device().SGDStep(sgdParams, n.SGDSlots(5e-4, false)); err != nil {
				t.Fatalf("%s step %d: SGDStep: %v", n.Device().Name(), step, err)
			}
			loss := res.LossSum / float64(res.N)
			if math.IsNaN(loss) || math.IsInf(loss, 0) {
				t.Fatalf("%s step %d: loss is %v", n.Device().Name(), step, loss)
			}
			curves[k] = append(curves[k], loss)
		}
	}
	mean := func(v []float64) float64 {
		s := 0.0
		for _, x := range v {
			s += x
		}
		return s / float64(len(v))
	}
	relDiff := func(lo, hi int) (cpuMean, gpuMean, rel float64) {
		a, b := mean(curves[0][lo:hi]), mean(curves[1][lo:hi])
		return a, b, math.Abs(b-a) / a
	}
	var log strings.Builder
	fmt.Fprintf(&log, "step   cpu loss   gpu loss   (the GPU restarts from the CPU's state at every multiple of %d)\n", window)
	for s := 0; s < steps; s += 10 {
		fmt.Fprintf(&log, "%4d   %8.4f   %8.4f\n", s, curves[0][s], curves[1][s])
	}
	fmt.Fprintf(&log, "window   cpu mean  gpu mean  rel diff\n")
	for lo := 0; lo < steps; lo += window {
		a, b, rel := relDiff(lo, lo+window)
		fmt.Fprintf(&log, "%3d-%3d  %8.4f  %8.4f  %7.2f%%\n", lo, lo+window-1, a, b, 100*rel)
		if rel > 0.05 {
			t.Errorf("steps %d-%d: mean loss gpu %.4f, cpu %.4f: %.1f%% apart, want <= 5%%", lo, lo+window-1, b, a, 100*rel)
		}
	}
	t.Logf("loss curves (cifar_resnet20, batch %d, lr %g, momentum %g):\n%s", batch, sgdParams.LR, sgdParams.Momentum, log.String())
	if a, b, rel := relDiff(steps-5, steps); rel > 0.10 {
		t.Errorf("final loss (mean of the last 5 steps): gpu %.4f, cpu %.4f: %.1f%% apart, want <= 10%%", b, a, 100*rel)
	}
	if first, last := mean(curves[0][:window]), mean(curves[0][steps-window:]); last > 0.9*first {
		t.Errorf("the CPU reference did not learn (mean loss %.3f over the first %d steps, %.3f over the last)", first, window, last)
	}
}

// copyTrainingState makes dst's parameters, running statistics and momentum buffers equal to src's (the
// gradients are rewritten by every backward pass).
func copyTrainingState(t testing.TB, dst, src *model.Net) {
	t.Helper()
	sd, dd := src.Device(), dst.Device()
	mustOK(t, sd.Sync())
	for i, p := range src.Params {
		q := dst.Params[i]
		v := make([]float32, p.Shape.Numel())
		mustOK(t, sd.Download(v, p.Value))
		mustOK(t, dd.Upload(q.Value, v))
		if p.Kind.Trainable() {
			mustOK(t, sd.Download(v, p.Momentum))
			mustOK(t, dd.Upload(q.Momentum, v))
		}
	}
	mustOK(t, dd.Sync())
}

// TestNetworkStepInEveryFormat is TestNetworkStepMatchesCPU's cifar_resnet20 step with the device's
// activations in every other format: the model allocating them, the convolutions on converted filter
// copies, batch norm and pooling in the format, the f32 classifier, and the SGD step, together. f16 runs
// with a loss scale of 1024 (the gradients of a batch of 8 reach down into f16's subnormals otherwise);
// the recorded gradients are unscaled, so every format is held to the same f32 reference.
//
// NHWC in f32 is the same arithmetic in another order, held to the f32 bounds. A 16-bit format rounds every
// stored activation and activation gradient to its unit roundoff u (2^-8 bf16, 2^-11 f16), and the bounds
// follow from what that does:
//   - Forward (loss, logits, running statistics): the roundings average out; measured on the kernel
//     emulator, the loss within 0.06u of the CPU's and the running statistics within 0.6u. Bound: 4u.
//   - Backward: the forward's errors, about u times the activations' scale, flip the ReLUs whose input
//     lies that close to 0 (rounding alone never changes a sign; the accumulated differences do): a
//     fraction ~u of them. Each flip changes one element of an activation gradient by O(its typical size),
//     so the gradient below moves by ~sqrt(u) relative, and 18 layers compound it (netCase describes one
//     flip's effect). Measured: the worst tensor 8.6 sqrt(u) for bf16 (0.54; a BN bias gradient, a sum that
//     cancels) and 6.3 sqrt(u) for f16 (0.14); all gradients together 2.5 sqrt(u) and 2.3 sqrt(u). Bounds:
//     12 sqrt(u) per tensor, 5 sqrt(u) for all gradients together. An integration bug (a stale filter
//     copy, a wrong layout, a missed conversion) is off by O(1) in every tensor below it.
//   - The layouts, and the fused and unfused paths, compute the same values in the same order: NCHW and
//     NHWC (fused or not) must agree bit for bit in every dtype.
func TestNetworkStepInEveryFormat(t *testing.T) {
	openGPU(t, backend.Options{})
	spec, err := model.Lookup("cifar_resnet20")
	mustOK(t, err)
	const batch, seed = 8, 17
	x, y := randomBatch(spec, batch, 31)
	before, cpuStep, cpuUpdated, gradNames, valueNames, statNames := cpuReferenceStep(t, spec, batch, seed, x, y)
	type format struct {
		dt      backend.DType
		layout  backend.Layout
		unfused bool
	}
	// first is each dtype's first run (NCHW fused), which the others of the dtype must equal bit for bit.
	first := map[backend.DType]netState{}
	for _, f := range []format{
		{backend.F32, backend.NHWC, false},
		{backend.BF16, backend.NCHW, false},
		{backend.BF16, backend.NHWC, false},
		{backend.BF16, backend.NHWC, true},
		{backend.F16, backend.NCHW, false},
		{backend.F16, backend.NHWC, false},
	} {
		name := fmt.Sprintf("%v_%v", f.dt, f.layout)
		if f.unfused {
			name += "_unfused"
		}
		t.Run(name, func(t *testing.T) {
			u := unitRoundoff(f.dt)
			fwdRel, gradRel, allRel, lossScale := 1e-4, 1e-2, 1e-2, float32(1)
			if u > 0 {
				fwdRel, gradRel, allRel = 4*u, 12*math.Sqrt(u), 5*math.Sqrt(u)
			}
			if f.dt == backend.F16 {
				lossScale = 1024
			}
			g := openGPU(t, formatOptions(f.dt, f.layout, f.unfused))
			net := buildNet(t, g, spec, batch)
			mustOK(t, net.Init(seed))
			checkTensors(t, "initial parameters", valueNames, downloadNet(t, net, false), before, nil, 0, 0)
			g.ResetLaunchCounts()
			step, updated := trainStepScaled(t, net, x, y, lossScale)
			checkNetPaths(t, g, f.unfused)
			if f.dt != backend.F32 || f.layout != backend.NCHW {
				to, from := filterLaunches(g)
				if to != 19 || from != 19 {
					t.Errorf("filter conversions: %d to the format, %d back; want one of each per convolution (19)", to, from)
				}
			}
			if prev, ok := first[f.dt]; ok {
				sameStep(t, step, prev, fmt.Sprintf("the %v NCHW fused run's", f.dt))
				return
			}
			first[f.dt] = step
			ref := cpuStepRef{before, cpuStep, cpuUpdated, gradNames, valueNames, statNames}
			ref.match(t, spec, batch, step, updated, fwdRel, gradRel, allRel)
		})
	}
}

// cpuStepRef is cpuReferenceStep's result.
type cpuStepRef struct {
	before                           map[string][]float32
	step, updated                    netState
	gradNames, valueNames, statNames []string
}

// match checks a device's training step (step, updated) of spec at batch against the CPU's: the loss, the
// logits and the running statistics within fwdRel, each gradient and updated parameter within gradRel,
// and all gradients together within allRel.
func (r cpuStepRef) match(t *testing.T, spec model.Spec, batch int, step, updated netState, fwdRel, gradRel, allRel float64) {
	t.Helper()
	t.Logf("loss: gpu %.7f, cpu %.7f", step.loss, r.step.loss)
	if d := math.Abs(step.loss - r.step.loss); d > fwdRel*math.Abs(r.step.loss) {
		t.Errorf("loss: gpu %.7f, cpu %.7f (|diff| %.3g > %g relative)", step.loss, r.step.loss, d, fwdRel)
	}
	if msg := compareValues(step.logits, r.step.logits, backend.Shape{batch, spec.NumClasses},
		tolerance{abs: fwdRel, rel: fwdRel, rms: true}); msg != "" {
		t.Errorf("logits: %s", msg)
	}
	checkTensors(t, "running statistics after the forward", r.statNames, step.tensors, r.step.tensors, nil, fwdRel, 1e-7)
	checkTensors(t, "gradients", r.gradNames, step.tensors, r.step.tensors, nil, gradRel, 1e-6)
	var gpuAll, cpuAll []float32
	for _, name := range r.gradNames {
		gpuAll, cpuAll = append(gpuAll, step.tensors[name]...), append(cpuAll, r.step.tensors[name]...)
	}
	all := l2diff(gpuAll, cpuAll) / l2(cpuAll)
	t.Logf("all gradients together: ||gpu-cpu|| = %.3g ||cpu|| (bound %.3g)", all, allRel)
	if all > allRel {
		t.Errorf("all gradients together: ||gpu-cpu|| = %.3g ||cpu||, want <= %.3g", all, allRel)
	}
	checkTensors(t, "parameters after one SGD step (relative to the update)", r.valueNames,
		updated.tensors, r.updated.tensors, r.before, gradRel, 1e-7)
}

// sameStep requires step to hold prev's bits in every tensor, the loss and the logits; prev is what names.
func sameStep(t testing.TB, step, prev netState, what string) {
	t.Helper()
	for name, v := range step.tensors {
		if !slices.Equal(math32bits(v), math32bits(prev.tensors[name])) {
			t.Errorf("%s differs from %s; want the same bits", name, what)
		}
	}
	if step.loss != prev.loss || !slices.Equal(math32bits(step.logits), math32bits(prev.logits)) {
		t.Errorf("loss or logits differ from %s; want the same bits", what)
	}
}

// math32bits is the bit patterns of v, so that comparisons treat NaNs and signed zeros exactly.
func math32bits(v []float32) []uint32 {
	out := make([]uint32, len(v))
	for i, x := range v {
		out[i] = math.Float32bits(x)
	}
	return out
}
