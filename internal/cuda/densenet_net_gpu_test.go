//go:build cuda

package cuda

// A whole DenseNet's training step on the device against the CPU reference: channel concatenations
// (copy_channels, forward and backward) and the transitions' 2x2 average pools.

import (
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
	const layers = 6
	netStepInFormats(t, spec, 23, 37, layers, func(t *testing.T, counts map[string]int64, suffix string) {
		for _, k := range []string{"copy_channels", "avgpool_window_forward", "avgpool_window_backward"} {
			if counts[k+suffix] == 0 {
				t.Errorf("%s%s never ran (launched: %s)", k, suffix, formatCounts(counts))
			}
		}
	})
}
