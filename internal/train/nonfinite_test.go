package train

import (
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"resnet/internal/config"
	"resnet/internal/cpu"
	"resnet/internal/jsonnum"
	"resnet/internal/model"
	"resnet/internal/safetensors"
)

// initNet is cifar_resnet8 for 10 classes and batches of up to capacity on the CPU, initialised from
// seed 1.
func initNet(t *testing.T, capacity int) *model.Net {
	t.Helper()
	spec, err := SpecFor(config.ModelConfig{Arch: "cifar_resnet8"}, 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	net, err := model.Build(cpu.New(), spec, capacity)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(net.Free)
	if err := net.Init(1); err != nil {
		t.Fatal(err)
	}
	return net
}

// setValue changes value i of the net's tensor name (its momentum buffer when momentum is set).
func setValue(t *testing.T, net *model.Net, name string, i int, v float32, momentum bool) {
	t.Helper()
	p, ok := net.Param(name)
	if !ok {
		t.Fatalf("no tensor %s", name)
	}
	dst := p.Value
	if momentum {
		dst = p.Momentum
	}
	vals := make([]float32, p.Shape.Numel())
	if err := net.Device().Download(vals, dst); err != nil {
		t.Fatal(err)
	}
	vals[i] = v
	if err := net.Device().Upload(dst, vals); err != nil {
		t.Fatal(err)
	}
}

// A checkpoint file holding a NaN, an infinity or a negative running variance (written by a diverged run
// before such checkpoints were refused, or damaged) is refused when read, naming the file, the tensor and
// the index; eval, export and resume all read checkpoints through LoadCheckpoint.
func TestLoadCheckpointRefusesNonFiniteValues(t *testing.T) {
	net := initNet(t, 1)
	r := NewRunDir(t.TempDir())
	good, err := r.SaveCheckpoint(net, State{Step: 4}, []byte("name: x\n"), 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCheckpoint(good); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		tensor string
		index  int
		value  float32
		what   string
	}{
		{"layer1.0.conv1.weight", 17, float32(math.NaN()), "NaN"},
		{"optimizer.momentum_buffer.fc.bias", 3, float32(math.Inf(1)), "+Inf"},
		{"layer2.0.bn2.running_var", 5, -0.5, "-0.5 (a variance cannot be negative)"},
	} {
		f, err := safetensors.ReadFile(good)
		if err != nil {
			t.Fatal(err)
		}
		for i, x := range f.Tensors {
			if x.Name == tc.tensor {
				v, _ := x.Float32s()
				v[tc.index] = tc.value
				f.Tensors[i] = safetensors.F32(x.Name, x.Shape, v)
			}
		}
		path := r.CheckpointPath(8)
		if err := safetensors.WriteFile(path, f); err != nil {
			t.Fatal(err)
		}
		_, err = LoadCheckpoint(path)
		want := "checkpoint " + path + ": " + tc.tensor + "[" + strconv.Itoa(tc.index) + "] is " + tc.what +
			": the run had diverged when it was written, or the file is damaged; use an earlier checkpoint"
		if err == nil || err.Error() != want {
			t.Errorf("LoadCheckpoint:\n got %v\nwant %s", err, want)
		}
	}
}

// No checkpoint holding a non-finite value (or a negative running variance) is written, and the good
// checkpoints stay: rotation runs only after a checkpoint was written.
func TestSaveCheckpointRefusesNonFiniteValues(t *testing.T) {
	for _, tc := range []struct {
		tensor   string
		momentum bool
		value    float32
		want     string
	}{
		{"layer1.0.bn1.running_var", false, float32(math.NaN()), "checkpoint at step 8 not written: layer1.0.bn1.running_var[2] is NaN: the run diverged"},
		{"conv1.weight", true, float32(math.Inf(-1)), "checkpoint at step 8 not written: optimizer.momentum_buffer.conv1.weight[2] is -Inf: the run diverged"},
	} {
		net := initNet(t, 1)
		r := NewRunDir(t.TempDir())
		good, err := r.SaveCheckpoint(net, State{Step: 4}, []byte("name: x\n"), 1)
		if err != nil {
			t.Fatal(err)
		}
		setValue(t, net, tc.tensor, 2, tc.value, tc.momentum)
		_, err = r.SaveCheckpoint(net, State{Step: 8}, []byte("name: x\n"), 1)
		if err == nil || err.Error() != tc.want || !errors.Is(err, ErrDiverged) {
			t.Errorf("SaveCheckpoint:\n got %v\nwant %s (wrapping ErrDiverged)", err, tc.want)
		}
		if names, _ := r.Checkpoints(); !slices.Equal(names, []string{good}) {
			t.Errorf("checkpoints %v, want only the good one %s", names, good)
		}
	}
}

// A rate far too high blows up the BN statistics in the forward pass of step 3: the run stops at that
// step, before its update, with ErrDiverged, and says where and what to do.
func TestDivergingRunStopsAtTheStep(t *testing.T) {
	cfg := smallConfig(2)
	cfg.Train.LR = 1e6
	cfg.Train.Schedule = config.ScheduleConfig{Type: "constant"}
	dir := t.TempDir()
	_, err := runOnce(t, cfg, dir, false, nil, nil)
	want := "train: epoch 1 step 3 (lr 1e+06): after the forward pass, layer1.0.bn1.running_var[0] is +Inf: the run diverged; " +
		"lower train.lr (e.g. --set train.lr=1e+05) and start a new run"
	checkDiverged(t, err, want, dir)
}

// Weights that overflow in the last update of an epoch (here: made infinite before it) are caught when
// the checkpoint is taken: it is not written, and the run stops.
func TestNonFiniteWeightsAreNotCheckpointed(t *testing.T) {
	dir := t.TempDir()
	err := runHooked(t, smallConfig(1), dir, false, io.Discard, nil, Options{afterBackward: func(net *model.Net, st *State) error {
		if st.Step == 3 {
			setValue(t, net, "conv1.weight", 0, float32(math.Inf(1)), false)
		}
		return nil
	}})
	want := "train: epoch 1 step 4 (lr 0.05): checkpoint at step 4 not written: conv1.weight[0] is NaN: the run diverged; " +
		"lower train.lr (e.g. --set train.lr=0.01) and start a new run"
	checkDiverged(t, err, want, dir)
}

// The reported failure: checkpoints every epoch, keep 1, evaluations rarer. Continued at a rate that blows
// up the BN statistics, the run used to write NaN checkpoints and rotate the good one out; now it stops at
// the step, and the good checkpoint resumes at a lower rate.
func TestDivergedRunKeepsItsGoodCheckpoints(t *testing.T) {
	cfg := smallConfig(1)
	cfg.Checkpoint.Every, cfg.Checkpoint.Keep, cfg.Eval.Every = 1, 1, 5
	dir := t.TempDir()
	if _, err := runOnce(t, cfg, dir, false, nil, nil); err != nil {
		t.Fatal(err)
	}
	good := NewRunDir(dir).CheckpointPath(4)
	cfg.Train.Epochs, cfg.Train.LR = 3, 1e6
	_, err := runOnce(t, cfg, dir, true, nil, nil)
	want := "train: epoch 2 step 7 (lr 6.545e+05): after the forward pass, layer1.0.bn1.running_var[0] is +Inf: " +
		"the run diverged; lower train.lr and continue from the last checkpoint, step-000000004.safetensors: resnet train --resume " +
		dir + " --set train.lr=1e+05"
	checkDiverged(t, err, want, dir, good)
	cfg.Train.Epochs, cfg.Train.LR = 2, 0.01
	if _, err := runOnce(t, cfg, dir, true, nil, nil); err != nil {
		t.Fatalf("resuming the good checkpoint at a lower rate: %v", err)
	}
}

// poisonGradient is an afterBackward hook that puts a NaN into value 5 of layer1.0.conv1.weight's
// gradient at the steps (counted from 1) that bad selects.
func poisonGradient(bad func(step int64) bool) func(*model.Net, *State) error {
	return overflowGradient(float32(math.NaN()), bad)
}

// overflowGradient is poisonGradient with value v (an infinity is what an fp16 overflow leaves).
func overflowGradient(v float32, bad func(step int64) bool) func(*model.Net, *State) error {
	return func(net *model.Net, st *State) error {
		if !bad(st.Step + 1) {
			return nil
		}
		p, _ := net.Param("layer1.0.conv1.weight")
		g := make([]float32, p.Shape.Numel())
		if err := net.Device().Download(g, p.Grad); err != nil {
			return err
		}
		g[5] = v
		return net.Device().Upload(p.Grad, g)
	}
}

func runHooked(t *testing.T, cfg config.Config, dir string, resume bool, out io.Writer, stop chan struct{}, opt Options) error {
	t.Helper()
	yml, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	opt.Config, opt.ConfigYAML, opt.RunDir, opt.Resume, opt.Device, opt.Out, opt.Stop = cfg, yml, dir, resume, cpu.New(), out, stop
	_, err = Run(opt)
	return err
}

// A NaN in a gradient stops the run by default, naming the tensor and the index.
func TestNonFiniteGradientStopsTheRun(t *testing.T) {
	dir := t.TempDir()
	err := runHooked(t, smallConfig(2), dir, false, io.Discard, nil, Options{afterBackward: poisonGradient(func(s int64) bool { return s == 3 })})
	want := "train: epoch 1 step 3 (lr 0.1): the gradient of layer1.0.conv1.weight[5] is NaN: the run diverged; " +
		"lower train.lr (e.g. --set train.lr=0.01) and start a new run"
	checkDiverged(t, err, want, dir)
}

// snapshot is every weight, BN statistic and momentum buffer of the net.
func snapshot(t *testing.T, net *model.Net) [][]float32 {
	t.Helper()
	var out [][]float32
	for _, p := range net.Params {
		v, err := net.Get(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
		if p.Kind.Trainable() {
			m := make([]float32, p.Shape.Numel())
			if err := net.Device().Download(m, p.Momentum); err != nil {
				t.Fatal(err)
			}
			out = append(out, m)
		}
	}
	return out
}

// Under train.on_nonfinite: skip, a step with a NaN gradient leaves weights, momentum and BN statistics as
// they were, is reported and counted in metrics.jsonl, and a run stopped right after it resumes to the
// same end as an uninterrupted one.
func TestSkipNonFiniteSteps(t *testing.T) {
	cfg := smallConfig(2)
	cfg.Train.OnNonFinite, cfg.Train.MaxNonFiniteSteps = config.OnNonFiniteSkip, 3
	poison := poisonGradient(func(s int64) bool { return s == 3 })

	var before, after [][]float32
	var out strings.Builder
	full := filepath.Join(t.TempDir(), "full")
	err := runHooked(t, cfg, full, false, &out, nil, Options{afterBackward: func(net *model.Net, st *State) error {
		switch st.Step {
		case 2: // before step 3's update: the net after step 2, but for BN statistics step 3 has moved
			before = snapshot(t, net)
		case 3: // the same, after the skipped step 3, for step 4
			after = snapshot(t, net)
		}
		return poison(net, st)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(before) == 0 || len(after) != len(before) {
		t.Fatal("no snapshots taken")
	}
	for i, p := range tensorNames(t) {
		if !slices.Equal(before[i], after[i]) && !strings.Contains(p, "running_") {
			t.Errorf("%s changed in the skipped step", p)
		}
	}
	wantLine := "epoch 1 step 3 (lr 0.1): the gradient of layer1.0.conv1.weight[5] is NaN; update skipped (1 in a row; the run stops at 3)\n"
	if !strings.Contains(out.String(), wantLine) {
		t.Errorf("output lacks %q:\n%s", wantLine, out.String())
	}
	want, err := NewRunDir(full).ReadMetrics()
	if err != nil || len(want) != 2 || want[0].NonFiniteSteps != 1 || want[1].NonFiniteSteps != 0 || !want[0].TrainLoss.Finite() {
		t.Fatalf("metrics %+v, %v; want nonfinite_steps 1 in epoch 1 and 0 in epoch 2", want, err)
	}

	// Stopped right after the skipped step, the run resumes to the same metrics and weights.
	stopped := filepath.Join(t.TempDir(), "stopped")
	stop := make(chan struct{})
	err = runHooked(t, cfg, stopped, false, io.Discard, stop, Options{afterBackward: poison, afterStep: func(st *State) error {
		if st.Step == 3 {
			close(stop)
		}
		return nil
	}})
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("stopped run: %v", err)
	}
	if err := runHooked(t, cfg, stopped, true, io.Discard, nil, Options{afterBackward: poison}); err != nil {
		t.Fatal(err)
	}
	got, _ := NewRunDir(stopped).ReadMetrics()
	if g, w := stripTiming(got), stripTiming(want); !slices.Equal(g, w) {
		t.Errorf("resumed metrics\n%+v\nwant\n%+v", g, w)
	}
	wantF, gotF := finalTensors(t, full), finalTensors(t, stopped)
	for _, w := range wantF.Tensors {
		if g, ok := gotF.Get(w.Name); !ok || !slices.Equal(g.Data, w.Data) {
			t.Errorf("resumed run: %s differs", w.Name)
		}
	}
}

// tensorNames names the entries of snapshot, in its order.
func tensorNames(t *testing.T) []string {
	var names []string
	for _, p := range initNet(t, 1).Params {
		names = append(names, p.Name)
		if p.Kind.Trainable() {
			names = append(names, momentumPrefix+p.Name)
		}
	}
	return names
}

// Skipped steps end the run once train.max_nonfinite_steps of them come in a row; a finite step between
// them starts the count again.
func TestSkipStopsAfterMaxNonFiniteStepsInARow(t *testing.T) {
	cfg := smallConfig(2)
	cfg.Train.OnNonFinite, cfg.Train.MaxNonFiniteSteps = config.OnNonFiniteSkip, 3
	bad := func(s int64) bool { return s == 1 || s >= 3 }
	dir := t.TempDir()
	err := runHooked(t, cfg, dir, false, io.Discard, nil, Options{afterBackward: poisonGradient(bad)})
	want := "train: epoch 2 step 5 (lr 0.075): the gradient of layer1.0.conv1.weight[5] is NaN; 3 steps in a row were not finite " +
		"(train.max_nonfinite_steps 3): the run diverged; lower train.lr (e.g. --set train.lr=0.01) and start a new run"
	checkDiverged(t, err, want, dir)
}

// checkDiverged fails the test unless err wraps ErrDiverged and reads want, and the run in dir holds the
// checkpoints it had before it diverged, good, and no other.
func checkDiverged(t *testing.T, err error, want, dir string, good ...string) {
	t.Helper()
	if err == nil || err.Error() != want || !errors.Is(err, ErrDiverged) {
		t.Fatalf("got %v\nwant %s (wrapping ErrDiverged)", err, want)
	}
	if names, _ := NewRunDir(dir).Checkpoints(); !slices.Equal(names, good) {
		t.Errorf("checkpoints %v, want %v", names, good)
	}
}

// A skipped step's forward pass is undone: the BN running statistics and the batch counter are those of
// before it. Checking a step reads the BN statistics and every gradient without allocating, and names a
// loss that is not finite.
func TestStepCheckRestoresBNStatistics(t *testing.T) {
	net := initNet(t, 2)
	c, err := newStepCheck(net, true)
	if err != nil {
		t.Fatal(err)
	}
	defer c.free()
	x := make([]float32, 2*3*32*32)
	for i := range x {
		x[i] = float32(i%7) - 3
	}
	before := snapshot(t, net)
	if err := c.save(); err != nil {
		t.Fatal(err)
	}
	r, err := net.TrainStep(x, []int32{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	if net.BatchesTracked != 1 || slices.EqualFunc(before, snapshot(t, net), slices.Equal) {
		t.Fatal("the forward pass changed no BN statistic")
	}
	if what, inGrad, err := c.problem(r); what != "" || inGrad || err != nil {
		t.Fatalf("a sound step: %q, %v, %v", what, inGrad, err)
	}
	for loss, want := range map[float64]string{math.NaN(): "the loss is NaN", math.Inf(1): "the loss is +Inf"} {
		if what, inGrad, err := c.problem(model.Result{LossSum: loss}); what != want || inGrad || err != nil {
			t.Errorf("loss %v: %q, %v, %v; want %q, not in a gradient", loss, what, inGrad, err, want)
		}
	}
	if n := testing.AllocsPerRun(5, func() { c.problem(r) }); n != 0 {
		t.Errorf("checking a step allocates %v times", n)
	}
	if err := c.restore(); err != nil {
		t.Fatal(err)
	}
	if net.BatchesTracked != 0 || !slices.EqualFunc(before, snapshot(t, net), slices.Equal) {
		t.Error("restore left the net changed")
	}
}

// metrics.jsonl takes the NaN loss of a diverged evaluation (as null) and gives it back as NaN.
func TestMetricsWithNonFiniteValuesEncode(t *testing.T) {
	r := NewRunDir(t.TempDir())
	m := Metrics{Epoch: 1, TrainLoss: jsonnum.Float(math.NaN()), TrainErr: 0.5, TestLoss: jsonnum.Float(math.Inf(1)), TestNonFinite: 32}
	if err := r.AppendMetrics(m); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(r.MetricsPath())
	if !strings.Contains(string(b), `"train_loss":null,"train_err":0.5,"test_loss":null,`) {
		t.Errorf("metrics line %s", b)
	}
	back, err := r.ReadMetrics()
	if err != nil || len(back) != 1 || !math.IsNaN(float64(back[0].TrainLoss)) || !math.IsNaN(float64(back[0].TestLoss)) || back[0].TestNonFinite != 32 {
		t.Errorf("read back %+v, %v", back, err)
	}
}
