package eval

import (
	"math"
	"testing"

	"resnet/internal/dataset"
)

// An image with a NaN probability is wrong at top-1 and top-5 and counted; the others score as usual.
func TestScoreCountsNonFiniteImagesWrong(t *testing.T) {
	nan := float32(math.NaN())
	p := &Probs{Classes: 4, Labels: []int32{0, 1, 2}, P: []float32{
		0.7, 0.1, 0.1, 0.1, // right
		nan, nan, nan, nan, // NaN compares false with everything: a plain ranking counts it right
		0.4, 0.3, 0.2, 0.1, // true class third: top-1 miss, top-5 hit
	}}
	s, classes, err := Score(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	three := 3.0 // errors are 1 - hits/n, computed in float64
	if s.N != 3 || s.Top1Err != 1-1/three || s.Top5Err != 1-2/three || s.NonFinite != 1 || !math.IsNaN(float64(s.Loss)) {
		t.Errorf("scores %+v, want n 3, top-1 err 2/3, top-5 err 1/3, 1 non-finite, loss NaN", s)
	}
	if classes[1].N != 1 || classes[1].Top1Err != 1 {
		t.Errorf("class 1 %+v, want its one image wrong", classes[1])
	}
}

// A net whose every output is NaN (one NaN in the classifier's bias) scores 100% error on every protocol
// and in an ensemble with a sound net, with every image counted as non-finite.
func TestNonFiniteOutputsAreWrongOnEveryProtocol(t *testing.T) {
	const n = 5
	set, center := syntheticSet(t, n)
	good := tinyNet(t, 20)
	goodProbs, err := Collect(good, center, set, Options{Protocol: Protocol{Kind: CenterCrop}, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	net := tinyNet(t, 20)
	p, _ := net.Param("fc.bias")
	bias, err := net.Get(p)
	if err != nil {
		t.Fatal(err)
	}
	bias[3] = float32(math.NaN())
	if err := net.Set(p, bias); err != nil {
		t.Fatal(err)
	}
	check := func(what string, s Scores) {
		t.Helper()
		if s.N != n || s.Top1Err != 1 || s.Top5Err != 1 || s.NonFinite != n || s.Loss.Finite() {
			t.Errorf("%s: %+v, want %d images, top-1 and top-5 error 1, %d non-finite, a non-finite loss", what, s, n, n)
		}
	}
	for _, proto := range []Protocol{{Kind: CenterCrop}, {Kind: TenCrop}, {Kind: MultiScale, Scales: []int{32, 40}}} {
		probs, err := Collect(net, center, set, Options{Protocol: proto, Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		s, _, err := Score(probs, nil)
		if err != nil {
			t.Fatal(err)
		}
		check(proto.String(), s)
		if proto.Kind == CenterCrop {
			avg, err := Average([]*Probs{goodProbs, probs})
			if err != nil {
				t.Fatal(err)
			}
			s, _, _ := Score(avg, nil)
			check("ensemble", s)
		}
	}
	l, err := dataset.NewPipelineLoader(center, dataset.LoaderOptions{BatchSize: 2, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s, err := OneCrop(net, l, nil)
	if err != nil {
		t.Fatal(err)
	}
	check("OneCrop", s)
}
