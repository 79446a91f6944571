//go:build cuda

package cuda

// A whole pre-activation network's training step on the device against the CPU reference.

import (
	"fmt"
	"math"
	"testing"

	"resnet/internal/backend"
	"resnet/internal/model"
)

// One training step of two small pre-activation nets, in f32 NCHW and bf16 NHWC, against the CPU: the
// paper's CIFAR ResNet-20 made pre-activation (basic units; identity and option-A shortcuts, whose
// gradients the accumulating kernel adds after the unit's first BN) and a three-unit bottleneck net (a
// projection from the pre-activated input in every unit, whose gradient shares the sum's). Tolerances
// are TestNetworkStepInEveryFormat's: f32 as TestNetworkStepMatchesCPU, bf16 widened by its unit
// roundoff u (12*sqrt(u) per gradient tensor; forward 4u there, here one u more per unit: each unit's sum
// is stored rounded to bf16 and carried on unnormalised in the residual stream, where a post-activation
// net's BN-add-ReLU rounds once after normalising; measured: 0.019*rms on the three-unit net's logits).
func TestPreActNetworkStep(t *testing.T) {
	openGPU(t, backend.Options{})
	basic, err := model.Lookup("cifar_preact_resnet20")
	mustOK(t, err)
	bottleneck, err := model.Lookup("cifar_preact_resnet164")
	mustOK(t, err)
	bottleneck.Name, bottleneck.Layers, bottleneck.InputSize = "preact_bottleneck_3", []int{1, 1, 1}, 16
	for _, c := range []struct {
		spec               model.Spec
		units, accumulated int64 // ResidualAdd calls, and identity shortcuts whose gradient is added
	}{{basic, 9, 9}, {bottleneck, 3, 0}} {
		netStepInFormats(t, c.spec, 17, 31, c.units, func(t *testing.T, counts map[string]int64, suffix string) {
			if n := counts["residual_add_out"+suffix]; n != c.units {
				t.Errorf("residual_add_out%s ran %d times, want %d (one per unit)", suffix, n, c.units)
			}
			if n := counts["residual_backward_accumulate"+suffix]; n != c.accumulated {
				t.Errorf("residual_backward_accumulate%s ran %d times, want %d", suffix, n, c.accumulated)
			}
		})
	}
}

// netStepInFormats runs one training step of spec at batch 4 (weights from seed, a random batch from
// inputSeed) in f32 NCHW and bf16 NHWC against the CPU reference, with TestNetworkStepInEveryFormat's
// tolerances widened by one bf16 unit roundoff per each of extra stored-and-reread sums; launched checks
// the kernel launch counts of the step (suffix names the format's kernels).
func netStepInFormats(t *testing.T, spec model.Spec, seed int64, inputSeed uint64, extra int64,
	launched func(t *testing.T, counts map[string]int64, suffix string)) {
	t.Helper()
	const batch = 4
	x, y := randomBatch(spec, batch, inputSeed)
	before, cpuStep, cpuUpdated, gradNames, valueNames, statNames := cpuReferenceStep(t, spec, batch, seed, x, y)
	for _, f := range []struct {
		dt     backend.DType
		layout backend.Layout
	}{{backend.F32, backend.NCHW}, {backend.BF16, backend.NHWC}} {
		t.Run(fmt.Sprintf("%s/%v_%v", spec.Name, f.dt, f.layout), func(t *testing.T) {
			fwdRel, gradRel := 1e-4, 1e-2
			if u := unitRoundoff(f.dt); u > 0 {
				fwdRel, gradRel = float64(4+extra)*u, 12*math.Sqrt(u)
			}
			g := openGPU(t, formatOptions(f.dt, f.layout, false))
			net := buildNet(t, g, spec, batch)
			mustOK(t, net.Init(seed))
			checkTensors(t, "initial parameters", valueNames, downloadNet(t, net, false), before, nil, 0, 0)
			g.ResetLaunchCounts()
			step, updated := trainStep(t, net, x, y)
			checkNetPaths(t, g, false)
			launched(t, launchesSince(t, g), formatSuffix(f.dt, f.layout, true))
			t.Logf("loss: gpu %.7f, cpu %.7f", step.loss, cpuStep.loss)
			if d := math.Abs(step.loss - cpuStep.loss); d > fwdRel*math.Abs(cpuStep.loss) {
				t.Errorf("loss: gpu %.7f, cpu %.7f (|diff| %.3g > %g relative)", step.loss, cpuStep.loss, d, fwdRel)
			}
			if msg := compareValues(step.logits, cpuStep.logits, backend.Shape{batch, spec.NumClasses},
				tolerance{abs: fwdRel, rel: fwdRel, rms: true}); msg != "" {
				t.Errorf("logits: %s", msg)
			}
			checkTensors(t, "running statistics after the forward", statNames, step.tensors, cpuStep.tensors, nil, fwdRel, 1e-7)
			checkTensors(t, "gradients", gradNames, step.tensors, cpuStep.tensors, nil, gradRel, 1e-6)
			checkTensors(t, "parameters after one SGD step (relative to the update)", valueNames,
				updated.tensors, cpuUpdated.tensors, before, gradRel, 1e-7)
		})
	}
}
