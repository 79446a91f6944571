package train

import (
	"math"
	"testing"

	"resnet/internal/config"
	"resnet/internal/dataset"
)

// Without dataset.mean and dataset.std a fixed-size set is normalised with its whole training split's
// statistics; with them, with theirs, in the scale dataset.norm_scale names.
func TestNormalizationOfASourceDataSet(t *testing.T) {
	c := config.Default().Dataset
	c.TrainSize, c.TestSize = 300, 20
	d, err := OpenData(c, 7)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := dataset.NewSynthetic(7, c.TrainSize, "train")
	if err != nil {
		t.Fatal(err)
	}
	whole, err := dataset.ComputeNormalization(tr, 0)
	if err != nil {
		t.Fatal(err)
	}
	sampled, err := dataset.ComputeNormalization(tr, 100)
	if err != nil {
		t.Fatal(err)
	}
	if whole == sampled {
		t.Fatal("a sample of the split has the whole split's statistics; the test cannot tell them apart")
	}
	if d.EvalSet.Mean != whole.Mean || d.EvalSet.Std != whole.Std {
		t.Errorf("normalised with mean %v std %v, want the whole split's %v and %v", d.EvalSet.Mean, d.EvalSet.Std, whole.Mean, whole.Std)
	}

	for _, tc := range []struct {
		scale     float64
		mean, std []float64
	}{
		{1, []float64{0.4914, 0.4822, 0.4465}, []float64{0.247, 0.243, 0.261}},
		{255, []float64{125.3, 123, 113.9}, []float64{63, 62.1, 66.7}},
	} {
		c.Mean, c.Std, c.NormScale = tc.mean, tc.std, tc.scale
		d, err := OpenData(c, 7)
		if err != nil {
			t.Fatal(err)
		}
		for ch := range 3 {
			wm, ws := tc.mean[ch]*255/tc.scale, tc.std[ch]*255/tc.scale
			if math.Abs(float64(d.EvalSet.Mean[ch])-wm) > 1e-4 || math.Abs(float64(d.EvalSet.Std[ch])-ws) > 1e-4 {
				t.Errorf("scale %g, channel %d: mean %v std %v, want %v and %v", tc.scale, ch, d.EvalSet.Mean[ch], d.EvalSet.Std[ch], wm, ws)
			}
		}
	}
}
