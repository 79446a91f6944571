package train

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"resnet/internal/config"
	"resnet/internal/cpu"
	"resnet/internal/model"
	"resnet/internal/safetensors"
)

// smallConfig trains the smallest CIFAR ResNet on a tiny synthetic set: 4 batches per epoch.
func smallConfig(epochs int) config.Config {
	c := config.Default()
	c.Name = "resume-test"
	c.Device = "cpu"
	c.Model.Arch = "cifar_resnet8"
	c.Dataset.TrainSize = 64
	c.Dataset.TestSize = 32
	c.Dataset.Workers = 2
	c.Train.BatchSize = 16
	c.Train.Epochs = epochs
	c.Train.Schedule = config.ScheduleConfig{Type: "cosine", WarmupEpochs: 0.5}
	c.Eval.BatchSize = 32
	c.Checkpoint.Every = 2
	c.Checkpoint.Keep = 2
	return c
}

func runOnce(t *testing.T, cfg config.Config, dir string, resume bool, stop <-chan struct{}, hook func(*State) error) (Result, error) {
	t.Helper()
	yml, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	return Run(Options{Config: cfg, ConfigYAML: yml, RunDir: dir, Resume: resume, Device: cpu.New(), Out: io.Discard, Stop: stop, afterStep: hook})
}

// stripTiming zeroes the fields that legitimately differ between identical runs.
func stripTiming(ms []Metrics) []Metrics {
	out := append([]Metrics(nil), ms...)
	for i := range out {
		out[i].ImagesPerSec, out[i].EpochSeconds, out[i].WallSeconds = 0, 0, 0
		out[i].DataSeconds, out[i].CopySeconds, out[i].ComputeSeconds = 0, 0, 0
	}
	return out
}

func finalTensors(t *testing.T, dir string) *safetensors.File {
	t.Helper()
	path, err := FindCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// An interrupted run (graceful stop mid-epoch, or a crash after a metrics line that no checkpoint
// covers) resumed with --resume ends with the same metrics.jsonl and the same weights as an uninterrupted
// run.
func TestInterruptAndResumeMatchUninterrupted(t *testing.T) {
	cfg := smallConfig(4)
	root := t.TempDir()

	full := filepath.Join(root, "full")
	if _, err := runOnce(t, cfg, full, false, nil, nil); err != nil {
		t.Fatal(err)
	}
	want, err := NewRunDir(full).ReadMetrics()
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 4 {
		t.Fatalf("%d metrics lines, want 4", len(want))
	}

	// SIGINT in the middle of epoch 2: the step finishes, a checkpoint is written, the run stops.
	stopped := filepath.Join(root, "stopped")
	stop := make(chan struct{})
	_, err = runOnce(t, cfg, stopped, false, stop, func(st *State) error {
		if st.Step == 6 {
			close(stop)
		}
		return nil
	})
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("stopped run returned %v, want ErrInterrupted", err)
	}
	if _, err := runOnce(t, cfg, stopped, true, nil, nil); err != nil {
		t.Fatal(err)
	}

	// kill -9 in epoch 4: the last checkpoint is from the end of epoch 2, and epoch 3's metrics line was
	// written after it, so the resumed run must cut it and write it again, once.
	crashed := filepath.Join(root, "crashed")
	crash := errors.New("killed")
	if _, err := runOnce(t, cfg, crashed, false, nil, func(st *State) error {
		if st.Step == 14 {
			return crash
		}
		return nil
	}); !errors.Is(err, crash) {
		t.Fatalf("crashed run returned %v", err)
	}
	if lines, _ := NewRunDir(crashed).ReadMetrics(); len(lines) != 3 {
		t.Fatalf("crashed run left %d metrics lines, want 3", len(lines))
	}
	if _, err := runOnce(t, cfg, crashed, true, nil, nil); err != nil {
		t.Fatal(err)
	}

	// kill -9 in epoch 2, before the first checkpoint (end of epoch 2) but after epoch 1's metrics line:
	// --resume starts the run over from step 0 with its config.yaml, and the stale line goes.
	early := filepath.Join(root, "early")
	if _, err := runOnce(t, cfg, early, false, nil, func(st *State) error {
		if st.Step == 6 {
			return crash
		}
		return nil
	}); !errors.Is(err, crash) {
		t.Fatalf("early crashed run returned %v", err)
	}
	if names, _ := NewRunDir(early).Checkpoints(); len(names) != 0 {
		t.Fatalf("the early crash left checkpoints %v", names)
	}
	if _, err := runOnce(t, cfg, early, true, nil, nil); err != nil {
		t.Fatal(err)
	}

	wantF := finalTensors(t, full)
	for _, dir := range []string{stopped, crashed, early} {
		got, err := NewRunDir(dir).ReadMetrics()
		if err != nil {
			t.Fatal(err)
		}
		g, w := stripTiming(got), stripTiming(want)
		if len(g) != len(w) {
			t.Fatalf("%s: %d metrics lines, want %d", filepath.Base(dir), len(g), len(w))
		}
		for i := range w {
			if !reflect.DeepEqual(g[i], w[i]) {
				t.Errorf("%s line %d:\n got %+v\nwant %+v", filepath.Base(dir), i+1, g[i], w[i])
			}
		}
		gotF := finalTensors(t, dir)
		for _, wt := range wantF.Tensors {
			gt, ok := gotF.Get(wt.Name)
			if !ok || !bytes.Equal(gt.Data, wt.Data) {
				t.Errorf("%s: tensor %s differs from the uninterrupted run", filepath.Base(dir), wt.Name)
			}
		}
	}
}

// interruptAt starts cfg in dir and stops it, with a checkpoint, after step.
func interruptAt(t *testing.T, cfg config.Config, dir string, step int64) {
	t.Helper()
	stop := make(chan struct{})
	if _, err := runOnce(t, cfg, dir, false, stop, func(st *State) error {
		if st.Step == step {
			close(stop)
		}
		return nil
	}); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("the run stopped after step %d returned %v, want ErrInterrupted", step, err)
	}
}

// A resumed run's --set changes reach config.yaml with its next checkpoint, never before: a resume that
// fails at once leaves the folder describing its newest checkpoint.
func TestResumeRewritesConfigWithItsCheckpoint(t *testing.T) {
	cfg := smallConfig(4)
	dir := t.TempDir()
	interruptAt(t, cfg, dir, 2)
	before, err := os.ReadFile(NewRunDir(dir).ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	changed := cfg
	changed.Train.LR = 0.05
	crash := errors.New("killed")
	if _, err := runOnce(t, changed, dir, true, nil, func(*State) error { return crash }); !errors.Is(err, crash) {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(NewRunDir(dir).ConfigPath()); !bytes.Equal(after, before) {
		t.Fatalf("a resume that wrote no checkpoint changed config.yaml:\n%s", after)
	}
	if _, err := runOnce(t, changed, dir, true, nil, nil); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(NewRunDir(dir).ConfigPath())
	ck, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(after, []byte("lr: 0.05")) || !bytes.Equal(after, ck.Config) {
		t.Errorf("config.yaml after the resumed run's checkpoints does not match the newest checkpoint's:\n%s", after)
	}
}

func TestNewRunRefusesExistingRunDir(t *testing.T) {
	cfg := smallConfig(1)
	dir := t.TempDir()
	if err := os.WriteFile(NewRunDir(dir).MetricsPath(), []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := runOnce(t, cfg, dir, false, nil, nil)
	want := dir + " already holds a run; continue it with --resume " + dir + ", or choose another directory with --out"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
	if b, _ := os.ReadFile(NewRunDir(dir).MetricsPath()); string(b) != "{}\n" {
		t.Error("existing metrics.jsonl was modified")
	}
}

func TestCheckpointRetention(t *testing.T) {
	cfg := smallConfig(3)
	cfg.Checkpoint.Every = 1
	cfg.Checkpoint.Keep = 2
	dir := t.TempDir()
	if _, err := runOnce(t, cfg, dir, false, nil, nil); err != nil {
		t.Fatal(err)
	}
	names, err := NewRunDir(dir).Checkpoints()
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 2 || filepath.Base(names[1]) != "step-000000012.safetensors" {
		t.Errorf("checkpoints %v, want the last two ending at step 12", names)
	}
	ck, err := LoadCheckpoint(names[1])
	if err != nil {
		t.Fatal(err)
	}
	if ck.State.Epoch != 3 || ck.State.Batch != 0 || ck.State.Step != 12 || ck.Arch != "cifar_resnet8" {
		t.Errorf("final checkpoint state %+v arch %s", ck.State, ck.Arch)
	}
	if _, ok := ck.file.Get("layer1.0.bn1.num_batches_tracked"); !ok {
		t.Error("checkpoint lacks num_batches_tracked (needed by torchvision's load_state_dict)")
	}
}

// A finished run resumed as it is says so; with more epochs it continues and records the new config.
func TestResumeFinishedRun(t *testing.T) {
	cfg := smallConfig(1)
	dir := t.TempDir()
	if _, err := runOnce(t, cfg, dir, false, nil, nil); err != nil {
		t.Fatal(err)
	}
	_, err := runOnce(t, cfg, dir, true, nil, nil)
	want := "resume: " + dir + " already finished its 1 epochs; to train longer, raise them: --set train.epochs=N"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
	cfg.Train.Epochs = 2
	res, err := runOnce(t, cfg, dir, true, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Last.Epoch != 2 || res.Last.Step != 8 {
		t.Errorf("extended run ended at epoch %d step %d, want 2 and 8", res.Last.Epoch, res.Last.Step)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "config.yaml"))
	if !bytes.Contains(b, []byte("epochs: 2")) {
		t.Errorf("config.yaml not updated on resume:\n%s", b)
	}
}

// train.target_err ends the run at the first evaluation that meets it, with a checkpoint; resuming it is
// refused until the target is lowered; wall_seconds grows over both processes.
func TestTargetErrEndsTheRun(t *testing.T) {
	cfg := smallConfig(4)
	cfg.Train.TargetErr = 0.999 // met by the first evaluation that gets one image of 32 right
	dir := t.TempDir()
	res, err := runOnce(t, cfg, dir, false, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := NewRunDir(dir).ReadMetrics()
	if err != nil {
		t.Fatal(err)
	}
	if !res.ReachedTarget || res.Epochs != 1 || len(ms) != 1 || ms[0].TestErr > cfg.Train.TargetErr {
		t.Fatalf("reached %v after %d epochs, metrics %+v; want the run to end after epoch 1", res.ReachedTarget, res.Epochs, ms)
	}
	if !(ms[0].WallSeconds > 0 && ms[0].WallSeconds >= ms[0].EpochSeconds) {
		t.Errorf("wall_seconds %v, epoch_seconds %v: want wall time > 0 and no less than the epoch's training", ms[0].WallSeconds, ms[0].EpochSeconds)
	}
	ck, err := LoadCheckpoint(res.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	if ck.State.Epoch != 1 || ck.State.TargetErr != ms[0].TestErr {
		t.Errorf("checkpoint at epoch %d with target_err %v, want epoch 1 and %v", ck.State.Epoch, ck.State.TargetErr, ms[0].TestErr)
	}
	_, err = runOnce(t, cfg, dir, true, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "reached its target error") || !strings.Contains(err.Error(), "--set train.target_err=0") {
		t.Fatalf("resuming a run that met its target: %v", err)
	}
	cfg.Train.TargetErr = 0
	res, err = runOnce(t, cfg, dir, true, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ms, err = NewRunDir(dir).ReadMetrics()
	if err != nil {
		t.Fatal(err)
	}
	if res.ReachedTarget || len(ms) != 4 {
		t.Fatalf("without a target the resumed run wrote %d metrics lines (reached %v), want 4", len(ms), res.ReachedTarget)
	}
	for i := 1; i < len(ms); i++ {
		if !(ms[i].WallSeconds > ms[i-1].WallSeconds) {
			t.Errorf("wall_seconds %v after epoch %d, %v after epoch %d: want it to grow across the resume", ms[i].WallSeconds, i+1, ms[i-1].WallSeconds, i)
		}
	}
}

// writeCIFAR10 writes a small cifar-10-batches-bin folder: 5 training files of perFile records and a
// test file, each image a noisy constant whose brightness encodes its label.
func writeCIFAR10(t *testing.T, dir string, perFile, test int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, n, salt int) {
		b := make([]byte, 0, n*3073)
		for i := 0; i < n; i++ {
			label := (i + salt) % 10
			b = append(b, byte(label))
			for p := 0; p < 3072; p++ {
				b = append(b, byte(label*20+(p*7+i*13+salt)%17))
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for k := 1; k <= 5; k++ {
		write("data_batch_"+string(rune('0'+k))+".bin", perFile, k)
	}
	write("test_batch.bin", test, 0)
}

func TestTrainOnCIFARFiles(t *testing.T) {
	root := t.TempDir()
	writeCIFAR10(t, filepath.Join(root, "cifar-10-batches-bin"), 16, 32)
	cfg := smallConfig(1)
	cfg.Dataset = config.Default().Dataset
	cfg.Dataset.Name, cfg.Dataset.Root, cfg.Dataset.ValSize, cfg.Dataset.EvalSplit = "cifar10", root, 16, "val"
	res, err := runOnce(t, cfg, filepath.Join(root, "run"), false, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 80 training records minus 16 held out: 4 batches of 16; the evaluation covers the 16 held out.
	if res.Last.Step != 4 || res.Last.BadImages != 0 {
		t.Errorf("last metrics %+v", res.Last)
	}
	cfg.Dataset.Root = filepath.Join(root, "missing")
	_, err = runOnce(t, cfg, filepath.Join(root, "run2"), false, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "dataset: cifar10: ") {
		t.Errorf("missing data: %v", err)
	}
}

// writeJPEGTree writes root/train/<class>/ and root/val/<class>/ with small JPEGs whose brightness
// depends on the class, plus one truncated file in train.
func writeJPEGTree(t *testing.T, root string, perClass int) {
	t.Helper()
	for split, n := range map[string]int{"train": perClass, "val": 2} {
		for c := 0; c < 3; c++ {
			dir := filepath.Join(root, split, "n0000000"+string(rune('0'+c)))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < n; i++ {
				img := image.NewRGBA(image.Rect(0, 0, 48+i, 40))
				for p := range img.Pix {
					img.Pix[p] = uint8(c*80 + (p*31+i*7)%40)
				}
				f, err := os.Create(filepath.Join(dir, "img"+string(rune('a'+i))+".JPEG"))
				if err != nil {
					t.Fatal(err)
				}
				jpeg.Encode(f, img, nil)
				f.Close()
			}
		}
	}
	good, _ := os.ReadFile(filepath.Join(root, "train", "n00000000", "imga.JPEG"))
	os.WriteFile(filepath.Join(root, "train", "n00000001", "broken.JPEG"), good[:100], 0o644)
}

func TestTrainOnImageFolder(t *testing.T) {
	root := t.TempDir()
	writeJPEGTree(t, root, 6)
	cfg := smallConfig(1)
	cfg.Dataset = config.Default().Dataset
	cfg.Dataset.Name, cfg.Dataset.Root, cfg.Dataset.ImageSize, cfg.Dataset.ResizeSize = "imagenet", root, 32, 36
	cfg.Dataset.TrainTransform, cfg.Dataset.PCALighting = "scale", true
	cfg.Train.BatchSize = 6
	res, err := runOnce(t, cfg, filepath.Join(root, "run"), false, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 19 files of which one is broken: 3 batches of 6 (the last one short by the broken file, or a
	// fourth batch of one dropped).
	if res.Last.Step != 3 || res.Last.BadImages != 1 {
		t.Errorf("last metrics %+v, want 3 steps and 1 bad image", res.Last)
	}
	cfg.Dataset.Strict = true
	_, err = runOnce(t, cfg, filepath.Join(root, "strict"), false, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "broken.JPEG") {
		t.Errorf("strict run: %v", err)
	}
}

// A Wide ResNet with dropout stopped mid-epoch and resumed ends with the weights of the uninterrupted run:
// each step's masks are drawn from (seed, step, layer), not from a generator whose state a checkpoint
// would have to hold. Without dropout the weights differ, so the masks did drop.
func TestDropoutResumeMatchesUninterrupted(t *testing.T) {
	cfg := smallConfig(3)
	cfg.Model.Arch, cfg.Model.Dropout = "cifar_wrn10_1", 0.3
	root := t.TempDir()
	full, stopped, plain := filepath.Join(root, "full"), filepath.Join(root, "stopped"), filepath.Join(root, "plain")
	if _, err := runOnce(t, cfg, full, false, nil, nil); err != nil {
		t.Fatal(err)
	}
	interruptAt(t, cfg, stopped, 6)
	if _, err := runOnce(t, cfg, stopped, true, nil, nil); err != nil {
		t.Fatal(err)
	}
	noDrop := cfg
	noDrop.Model.Dropout = 0
	if _, err := runOnce(t, noDrop, plain, false, nil, nil); err != nil {
		t.Fatal(err)
	}
	wantF, gotF, plainF := finalTensors(t, full), finalTensors(t, stopped), finalTensors(t, plain)
	differs := false
	for _, wt := range wantF.Tensors {
		if gt, ok := gotF.Get(wt.Name); !ok || !bytes.Equal(gt.Data, wt.Data) {
			t.Errorf("tensor %s differs from the uninterrupted run", wt.Name)
		}
		if pt, ok := plainF.Get(wt.Name); ok && !bytes.Equal(pt.Data, wt.Data) {
			differs = true
		}
	}
	if !differs {
		t.Error("training with dropout 0.3 gave the weights of training without")
	}
	// The resumed run matching would also hold if every step drew the same mask (a key never set); so each
	// step's forward must have had that step's key, in a fresh run and in a resumed one.
	for _, resume := range []bool{false, true} {
		dir := filepath.Join(root, fmt.Sprint("keyed-", resume))
		if resume {
			interruptAt(t, cfg, dir, 4)
		}
		steps := 0
		err := runHooked(t, cfg, dir, resume, io.Discard, nil, Options{afterBackward: func(net *model.Net, st *State) error {
			if seed, step := net.DropoutKey(); seed != cfg.Seed || step != st.Step {
				return fmt.Errorf("step %d drew the dropout masks of seed %d, step %d; want seed %d, step %d", st.Step, seed, step, cfg.Seed, st.Step)
			}
			steps++
			return nil
		}})
		if err != nil || steps == 0 {
			t.Fatalf("resume %v: %d steps checked, %v", resume, steps, err)
		}
	}
}

// Every epoch's training time is split into waiting for data, copying to the device and compute, in
// metrics.jsonl and on the epoch line; an epoch that waits for its batches more than a tenth of its time
// says so once per run, naming dataset.workers.
func TestStepTimeSplit(t *testing.T) {
	cfg := smallConfig(2)
	cfg.Dataset.TrainSize = 320 // 20 steps an epoch, the fewest the warning looks at
	yml, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	const wait = 20 * time.Millisecond
	var out bytes.Buffer
	dir := t.TempDir()
	_, err = Run(Options{Config: cfg, ConfigYAML: yml, RunDir: dir, Device: cpu.New(), Out: &out,
		beforeBatch: func() { time.Sleep(wait) }})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := NewRunDir(dir).ReadMetrics()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		sum := m.DataSeconds + m.CopySeconds + m.ComputeSeconds
		if m.DataSeconds < 20*wait.Seconds() || !(m.CopySeconds > 0) || !(m.ComputeSeconds > 0) ||
			math.Abs(sum-m.EpochSeconds) > 1e-9*m.EpochSeconds {
			t.Errorf("epoch %d: data %v s (at least %v slept), copy %v s, compute %v s, together %v s; epoch_seconds %v",
				m.Epoch, m.DataSeconds, 20*wait.Seconds(), m.CopySeconds, m.ComputeSeconds, sum, m.EpochSeconds)
		}
	}
	s := out.String()
	if n := strings.Count(s, "waited for data"); n != 1 || !strings.Contains(s, "Raise dataset.workers (now 2;") {
		t.Errorf("the data warning appears %d times, want once naming dataset.workers:\n%s", n, s)
	}
	if n := strings.Count(s, "compute "); n != 2 {
		t.Errorf("%d epoch lines give the time split, want 2:\n%s", n, s)
	}

	// Without the wait, no warning: the synthetic loader keeps up.
	out.Reset()
	if _, err := Run(Options{Config: cfg, ConfigYAML: yml, RunDir: t.TempDir(), Device: cpu.New(), Out: &out}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "waited for data") {
		t.Errorf("a run whose loader keeps up was told it waits for data:\n%s", out.String())
	}
}
