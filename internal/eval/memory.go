// This file estimates the memory of the multi-scale test beyond the base net, for the check made before
// it runs.

package eval

import (
	"runtime"
	"slices"

	"resnet/internal/backend"
	"resnet/internal/model"
	"resnet/internal/sysmem"
)

// MultiScaleNeed estimates what the multi-scale test of a net of spec s adds to the base net: the
// fully-convolutional nets (the largest, and the others the cache keeps within its budget of
// maxCachedValues float32s, 0 meaning the default), their convolution workspace, and the images in flight
// (each prepared at every scale, with its mirror image, by workers goroutines ahead of the scoring).
// Images of the set's fixed size are square; folder images are taken as 4:3 (a common photograph shape;
// larger ones take more) where the net takes that shape. The nets' 4-D activations are of dtype act (the
// device's, backend.ActivationFormat).
func MultiScaleNeed(s model.Spec, set *Set, scales []int, workers int, maxCachedValues int64, act backend.DType) (sysmem.Need, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if maxCachedValues <= 0 {
		maxCachedValues = defaultCachedValues
	}
	var nets []int64
	var workspace, pixels int64
	for _, scale := range scales {
		h, w := scale, scale
		m, err := model.EstimateFullyConvMemory(s, h, w, 2, act)
		if set.Files != nil {
			// A net with option-A shortcuts may take the square but not the 4:3 shape.
			if m43, err43 := model.EstimateFullyConvMemory(s, h, scale*4/3, 2, act); err43 == nil {
				m, w, err = m43, scale*4/3, nil
			}
		}
		if err != nil {
			return nil, err
		}
		nets = append(nets, sysmem.Add(m.Device(), m.Host))
		workspace = max(workspace, m.Workspace)
		pixels = sysmem.Add(pixels, sysmem.Mul(int64(h), int64(w)))
	}
	slices.Sort(nets)
	largest := nets[len(nets)-1]
	others := sysmem.Add(nets[:len(nets)-1]...)
	if set.Files != nil {
		// Images of many shapes fill the cache up to its budget.
		others = sysmem.Saturated
	}
	cached := min(others, sysmem.Mul(4, maxCachedValues))
	// In flight: the 2*workers queued results, one image per worker, and the one being scored; each holds
	// 2 x 3 float32 planes per scale.
	inFlight := sysmem.Mul(int64(3*workers+1), 24, pixels)
	return sysmem.Need{
		{Name: "fully-convolutional nets", Bytes: sysmem.Add(largest, cached)},
		{Name: "their workspace", Bytes: workspace},
		{Name: "images in flight", Bytes: inFlight, Host: true},
	}, nil
}
