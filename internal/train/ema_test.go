package train

import (
	"bytes"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"resnet/internal/cpu"
	"resnet/internal/model"
)

// The average follows torchvision's AveragedModel with its EMA function: the first update copies the
// weights, the next ones lerp towards them by 1 - decay in float32, and an update during the warm-up
// restarts it (the next update copies again).
func TestEMAUpdates(t *testing.T) {
	spec, err := model.Lookup("cifar_resnet8")
	if err != nil {
		t.Fatal(err)
	}
	net, err := model.Build(cpu.New(), spec, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer net.Free()
	p := net.Params[0]
	set := func(v float32) {
		vals := make([]float32, p.Shape.Numel())
		for i := range vals {
			vals[i] = v
		}
		if err := net.Set(p, vals); err != nil {
			t.Fatal(err)
		}
	}
	e := newEMA(0.75, 1, net)
	var st State
	want := []struct {
		w, ema float32
		warmup bool
	}{
		{4, 4, true},      // first update: a copy, then the warm-up restarts it
		{8, 8, false},     // so this one copies too
		{0, 6, false},     // 8 + 0.25*(0 - 8)
		{10, 7, false},    // 6 + 0.25*(10 - 6)
		{-1, 5, false},    // 7 + 0.25*(-8)
		{3, 4.5, true},    // 5 + 0.25*(-2), then a restart
		{1.5, 1.5, false}, // a copy
	}
	for i, c := range want {
		set(c.w)
		if err := e.update(net, &st, c.warmup); err != nil {
			t.Fatal(err)
		}
		if got := e.vals[0][0]; got != c.ema {
			t.Errorf("update %d (weights %v): average %v, want %v", i+1, c.w, got, c.ema)
		}
	}
	if st.EMAUpdates != 1 {
		t.Errorf("%d updates counted since the last restart, want 1", st.EMAUpdates)
	}
	if got := e.vals[0][0]; math.IsNaN(float64(got)) {
		t.Fatal("NaN average")
	}
}

// A run keeping an average evaluates it beside the weights, checkpoints it, and resumes it exactly: a run
// stopped mid-epoch and resumed ends with the metrics (the average's scores included) and the tensors of an
// uninterrupted one; the average differs from the weights.
func TestEMARunResumesExactly(t *testing.T) {
	cfg := smallConfig(3)
	cfg.Train.EMADecay, cfg.Train.EMAEvery = 0.9, 2
	root := t.TempDir()
	want := resumeMatchesUninterrupted(t, cfg, root, 7)
	for _, m := range want {
		if m.TestErrEMA == nil || m.TestLossEMA == nil || m.TestTop5ErrEMA == nil {
			t.Fatalf("epoch %d has no scores of the average: %+v", m.Epoch, m)
		}
	}
	a := finalTensors(t, filepath.Join(root, "full"))
	emaTensors, differ := 0, false
	for _, x := range a.Tensors {
		if name, ok := strings.CutPrefix(x.Name, emaPrefix); ok {
			emaTensors++
			raw, _ := a.Get(name)
			differ = differ || !bytes.Equal(raw.Data, x.Data)
		}
	}
	spec, _ := model.Lookup("cifar_resnet8")
	net, err := model.Build(cpu.New(), spec, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer net.Free()
	if emaTensors != len(net.Params) || !differ {
		t.Errorf("%d averaged tensors (want %d, one per tensor of the net), differing from the weights: %v", emaTensors, len(net.Params), differ)
	}
}
