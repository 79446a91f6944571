//go:build cuda

package cuda

// A whole DenseNet's training step on the device against the CPU reference: channel concatenations
// (copy_channels, forward and backward) and the transitions' 2x2 average pools.

import (
	"fmt"
	"math"
	"testing"

	"resnet/internal/backend"
	"resnet/internal/model"
)

// One training step of a small DenseNet-BC (depth 16: two dense layers a block, growth 12) in f32 NCHW
// and bf16 NHWC, against the CPU, with TestPreActNetworkStep's tolerances (one unit roundoff more per
// dense layer in bf16: each concatenated map is stored rounded and read again by every later layer).
func TestDenseNetNetworkStep(t *testing.T) {
	openGPU(t, backend.Options{})
	spec, err := model.Lookup("cifar_densenet_bc16_k12")
	mustOK(t, err)
	const batch, seed, layers = 4, 23, 6
	x, y := randomBatch(spec, batch, 37)
	before, cpuStep, cpuUpdated, gradNames, valueNames, statNames := cpuReferenceStep(t, spec, batch, seed, x, y)
	for _, f := range []struct {
		dt     backend.DType
		layout backend.Layout
	}{{backend.F32, backend.NCHW}, {backend.BF16, backend.NHWC}} {
		t.Run(fmt.Sprintf("%v_%v", f.dt, f.layout), func(t *testing.T) {
			fwdRel, gradRel := 1e-4, 1e-2
			if u := unitRoundoff(f.dt); u > 0 {
				fwdRel, gradRel = float64(4+layers)*u, 12*math.Sqrt(u)
			}
			g := openGPU(t, formatOptions(f.dt, f.layout, false))
			net := buildNet(t, g, spec, batch)
			mustOK(t, net.Init(seed))
			checkTensors(t, "initial parameters", valueNames, downloadNet(t, net, false), before, nil, 0, 0)
			g.ResetLaunchCounts()
			step, updated := trainStep(t, net, x, y)
			counts := launchesSince(t, g)
			suffix := formatSuffix(f.dt, f.layout, true)
			for _, k := range []string{"copy_channels", "avgpool_window_forward", "avgpool_window_backward"} {
				if counts[k+suffix] == 0 {
					t.Errorf("%s%s never ran (launched: %s)", k, suffix, formatCounts(counts))
				}
			}
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
