package model

import (
	"math"
	"testing"

	"resnet/internal/cpu"
)

func TestCheckValues(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, tc := range []struct {
		name string
		v    []float32
		want string // "" for no error
	}{
		{"conv1.weight", []float32{0, -1e38, 3.4e38, 1e-45}, ""},
		{"conv1.weight", []float32{1, 2, nan, inf}, "conv1.weight[2] is NaN"},
		{"fc.bias", []float32{inf}, "fc.bias[0] is +Inf"},
		{"fc.bias", []float32{0, -inf}, "fc.bias[1] is -Inf"},
		{"bn1.running_mean", []float32{-0.5}, ""},
		{"layer1.0.bn1.running_var", []float32{1, 0, float32(math.Copysign(0, -1)), -0.25}, "layer1.0.bn1.running_var[3] is -0.25 (a variance cannot be negative)"},
		{"layer1.0.bn1.running_var", []float32{1, nan, -1}, "layer1.0.bn1.running_var[1] is NaN"},
		{"layer1.0.bn1.running_var", []float32{1, -1, nan}, "layer1.0.bn1.running_var[1] is -1 (a variance cannot be negative)"},
		{"fc.weight", []float32{0, 1, 2, 3, 4, 5, 6, 7, 8}, ""},
		{"fc.weight", []float32{0, 1, 2, 3, 4, 5, inf, nan, 8}, "fc.weight[6] is +Inf"},
		{"fc.weight", []float32{0, 1, 2, 3, 4, 5, 6, 7, nan}, "fc.weight[8] is NaN"},
	} {
		err := CheckValues(tc.name, tc.v)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("CheckValues(%s, %v) = %q, want %q", tc.name, tc.v, got, tc.want)
		}
	}
}

func TestCheckValuesDoesNotAllocate(t *testing.T) {
	v := make([]float32, 1000)
	if n := testing.AllocsPerRun(10, func() { _ = CheckValues("layer1.0.bn1.running_var", v) }); n != 0 {
		t.Errorf("%v allocations per call, want 0", n)
	}
}

// A NaN in an image makes every logit of that image NaN. NaN compares false with everything, so a plain
// ranking finds no class above the true one and counts the image right; it must count it wrong, at top-1
// and top-5, and say so.
func TestEvaluateCountsNonFiniteOutputsWrong(t *testing.T) {
	net, err := Build(cpu.New(), tinySpec(true, 'A'), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer net.Free()
	if err := net.Init(3); err != nil {
		t.Fatal(err)
	}
	x, y := tinyBatch(4, 5)
	per := len(x) / 4
	// The three clean images alone (inference-mode BN treats each image on its own).
	clean, err := net.Evaluate(append(append([]float32(nil), x[:2*per]...), x[3*per:]...), []int32{y[0], y[1], y[3]})
	if err != nil {
		t.Fatal(err)
	}
	if clean.NonFinite != 0 || clean.Top5 != 3 {
		t.Fatalf("clean images: %+v, want no non-finite outputs and 3 top-5 hits (of 3 classes)", clean)
	}
	x[2*per+7] = float32(math.NaN())
	r, err := net.Evaluate(x, y)
	if err != nil {
		t.Fatal(err)
	}
	if r.N != 4 || r.Top1 != clean.Top1 || r.Top5 != 3 || r.NonFinite != 1 || !math.IsNaN(r.LossSum) {
		t.Errorf("with a NaN in image 2: %+v, want N 4, Top1 %d, Top5 3, NonFinite 1, LossSum NaN", r, clean.Top1)
	}
}

func TestTargetRank(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, tc := range []struct {
		row    []float32
		label  int32
		rank   int
		finite bool
	}{
		{[]float32{0.1, 0.7, 0.2}, 1, 0, true},
		{[]float32{0.1, 0.7, 0.2}, 2, 1, true},
		{[]float32{0.5, 0.5, 0}, 1, 1, true}, // a tie goes to the class that comes first
		{[]float32{0.5, 0.5, 0}, 0, 0, true},
		{[]float32{nan, nan, nan}, 1, 3, false},
		{[]float32{0.1, 0.7, nan}, 1, 3, false},
		{[]float32{-inf, 0.7, 0.2}, 1, 3, false},
		{[]float32{0, inf, 0}, 1, 3, false},
	} {
		rank, finite := TargetRank(tc.row, tc.label)
		if rank != tc.rank || finite != tc.finite {
			t.Errorf("TargetRank(%v, %d) = %d, %v; want %d, %v", tc.row, tc.label, rank, finite, tc.rank, tc.finite)
		}
	}
}
