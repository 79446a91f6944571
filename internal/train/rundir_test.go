package train

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"resnet/internal/config"
	"resnet/internal/cpu"
	"resnet/internal/model"
	"resnet/internal/safetensors"
)

func TestRunDirLayout(t *testing.T) {
	r := NewRunDir(filepath.Join("runs", "r20"))
	for got, want := range map[string]string{
		r.Path():              "runs/r20",
		r.ConfigPath():        "runs/r20/config.yaml",
		r.MetricsPath():       "runs/r20/metrics.jsonl",
		r.CheckpointDir():     "runs/r20/checkpoints",
		r.CheckpointPath(42):  "runs/r20/checkpoints/step-000000042.safetensors",
		r.CheckpointPath(1e9): "runs/r20/checkpoints/step-1000000000.safetensors",
	} {
		if got != filepath.FromSlash(want) {
			t.Errorf("got %s, want %s", got, want)
		}
	}
}

// Create writes config.yaml into a new folder and refuses one with metrics or checkpoints, leaving it as
// it was.
func TestRunDirCreateRefusesExistingRun(t *testing.T) {
	root := t.TempDir()
	fresh := NewRunDir(filepath.Join(root, "a", "b"))
	if fresh.HoldsRun() {
		t.Error("a missing folder holds a run")
	}
	if err := fresh.Create([]byte("name: x\n")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(fresh.ConfigPath()); err != nil || string(b) != "name: x\n" {
		t.Errorf("config.yaml %q, %v", b, err)
	}
	if fresh.HoldsRun() {
		t.Error("a folder with only config.yaml holds a run")
	}

	withMetrics := NewRunDir(filepath.Join(root, "m"))
	if err := withMetrics.AppendMetrics(Metrics{Epoch: 1}); err == nil {
		t.Fatal("metrics appended to a folder that does not exist")
	}
	os.MkdirAll(withMetrics.Path(), 0o755)
	if err := withMetrics.AppendMetrics(Metrics{Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	withCheckpoints := NewRunDir(filepath.Join(root, "c"))
	os.MkdirAll(withCheckpoints.CheckpointDir(), 0o755)
	for _, r := range []RunDir{withMetrics, withCheckpoints} {
		err := r.Create([]byte("name: y\n"))
		if !errors.Is(err, ErrRunExists) || err.Error() != r.Path()+" already holds a run" {
			t.Errorf("Create(%s): %v", r.Path(), err)
		}
		if _, err := os.Stat(r.ConfigPath()); err == nil {
			t.Errorf("Create(%s) wrote config.yaml into an existing run", r.Path())
		}
	}
}

func TestRunDirMetricsRoundTripAndTruncate(t *testing.T) {
	r := NewRunDir(t.TempDir())
	if _, err := r.ReadMetrics(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("reading missing metrics: %v", err)
	}
	if n, err := r.MetricsSize(); n != 0 || err != nil {
		t.Errorf("size of missing metrics: %d, %v", n, err)
	}
	if err := r.TruncateMetrics(0); err != nil {
		t.Errorf("truncating missing metrics to 0: %v", err)
	}
	want := []Metrics{
		{Epoch: 1, Step: 4, LR: 0.1, TrainLoss: 2.3, TrainErr: 0.9, TestErr: 0.875, BadImages: 1, ImagesPerSec: 12.5},
		{Epoch: 2, Step: 8, LR: 0.05, TrainLoss: 2.1, TrainErr: 0.8, TestTop5Err: 0.5, EpochSeconds: 3},
	}
	if err := r.AppendMetrics(want[0]); err != nil {
		t.Fatal(err)
	}
	first, err := r.MetricsSize()
	if err != nil || first == 0 {
		t.Fatalf("size after one line: %d, %v", first, err)
	}
	if err := r.AppendMetrics(want[1]); err != nil {
		t.Fatal(err)
	}
	got, err := r.ReadMetrics()
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("read back %+v, %v; want %+v", got, err, want)
	}
	if err := r.TruncateMetrics(first); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.ReadMetrics(); !slices.Equal(got, want[:1]) {
		t.Errorf("after truncation %+v, want the first line", got)
	}
	err = r.TruncateMetrics(first + 1)
	wantErr := "resume: " + r.MetricsPath() + " is " + strconv.FormatInt(first, 10) + " bytes, shorter than the " + strconv.FormatInt(first+1, 10) + " the checkpoint recorded"
	if err == nil || err.Error() != wantErr {
		t.Errorf("truncating beyond the end: %v, want %q", err, wantErr)
	}
	os.WriteFile(r.MetricsPath(), []byte("{\"epoch\":1}\n\n{bad\n"), 0o644)
	if _, err := r.ReadMetrics(); err == nil || !strings.HasPrefix(err.Error(), r.MetricsPath()+" line 3: ") {
		t.Errorf("a bad line: %v, want the file and line 3", err)
	}
}

// SaveCheckpoint keeps the newest keep checkpoints; the listing, FindCheckpoint and NewestCheckpoint agree
// on which is newest, and other files in the folder are left alone.
func TestRunDirCheckpointRotation(t *testing.T) {
	net := zeroNet(t)
	r := NewRunDir(t.TempDir())
	if _, err := r.NewestCheckpoint(); err == nil {
		t.Error("a run without checkpoints has a newest one")
	}
	os.MkdirAll(r.CheckpointDir(), 0o755)
	os.WriteFile(filepath.Join(r.CheckpointDir(), "notes.txt"), nil, 0o644)
	want := "checkpoint: no step-*.safetensors checkpoint in " + r.CheckpointDir()
	if _, err := FindCheckpoint(r.Path()); err == nil || err.Error() != want {
		t.Errorf("FindCheckpoint of an empty run: %v, want %q", err, want)
	}
	for _, step := range []int64{3, 12, 7, 100} {
		path, err := r.SaveCheckpoint(net, State{Step: step}, []byte("name: x\n"), 2)
		if err != nil || path != r.CheckpointPath(step) {
			t.Fatalf("step %d saved to %s, %v", step, path, err)
		}
	}
	names, err := r.Checkpoints()
	if err != nil || !slices.Equal(names, []string{r.CheckpointPath(12), r.CheckpointPath(100)}) {
		t.Errorf("checkpoints %v, %v; want steps 12 and 100", names, err)
	}
	if _, err := os.Stat(filepath.Join(r.CheckpointDir(), "notes.txt")); err != nil {
		t.Error("rotation removed a file that is no checkpoint")
	}
	for where, want := range map[string]string{
		r.Path():             r.CheckpointPath(100),
		r.CheckpointDir():    r.CheckpointPath(100),
		r.CheckpointPath(12): r.CheckpointPath(12), // a file is taken as given
	} {
		if got, err := FindCheckpoint(where); got != want || err != nil {
			t.Errorf("FindCheckpoint(%s) = %s, %v; want %s", where, got, err, want)
		}
	}
	if got, err := r.NewestCheckpoint(); got != r.CheckpointPath(100) || err != nil {
		t.Errorf("NewestCheckpoint = %s, %v", got, err)
	}
	ck, err := LoadCheckpoint(r.CheckpointPath(100))
	if err != nil || ck.State.Step != 100 || ck.Arch != "cifar_resnet8" || string(ck.Config) != "name: x\n" {
		t.Errorf("checkpoint read back: %+v, %v", ck, err)
	}
}

// The run folder's file names are spelled in rundir.go alone: every other package goes through RunDir.
func TestOnlyRunDirSpellsTheLayout(t *testing.T) {
	root := filepath.Join("..", "..")
	names := []string{`"config.yaml"`, `"metrics.jsonl"`, `"reproducibility.json"`, `"checkpoints"`, `"step-%09d`}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || path == filepath.Join(root, "internal", "train", "rundir.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, n := range names {
			if strings.Contains(string(src), n) {
				t.Errorf("%s spells %s: use train.RunDir", path, n)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A folder's newest checkpoint that does not read back: resume falls back to the one before it with a
// warning, and eval or export (OpenCheckpoint) say so and name the intact one.
func TestCorruptNewestCheckpoint(t *testing.T) {
	net := zeroNet(t)
	r := NewRunDir(t.TempDir())
	for _, step := range []int64{4, 8} {
		if _, err := r.SaveCheckpoint(net, State{Step: step}, []byte("name: x\n"), 3); err != nil {
			t.Fatal(err)
		}
	}
	newest := r.CheckpointPath(8)
	fi, _ := os.Stat(newest)
	if err := os.Truncate(newest, fi.Size()-100); err != nil {
		t.Fatal(err)
	}
	rp, err := r.ResumePoint()
	if err != nil {
		t.Fatal(err)
	}
	if rp.Checkpoint == nil || rp.Checkpoint.Path != r.CheckpointPath(4) || len(rp.Skipped) != 1 ||
		!strings.HasPrefix(rp.Skipped[0], "step-000000008.safetensors is unreadable (checkpoint: safetensors: ") ||
		!strings.HasSuffix(rp.Skipped[0], "; using the one before it") {
		t.Errorf("resume point %+v", rp)
	}
	_, err = OpenCheckpoint(r.Path())
	want := "; it is the newest of " + r.Path() + ", whose newest intact checkpoint is " + r.CheckpointPath(4) + " (give that file)"
	if err == nil || !strings.HasPrefix(err.Error(), "checkpoint: safetensors: ") || !strings.HasSuffix(err.Error(), want) {
		t.Errorf("OpenCheckpoint: %v; want it to end %q", err, want)
	}
	if err := os.Truncate(r.CheckpointPath(4), 10); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ResumePoint(); err == nil || !strings.HasPrefix(err.Error(), "resume: no checkpoint of "+r.Path()+" reads back intact; the newest: checkpoint: safetensors: ") {
		t.Errorf("every checkpoint corrupt: %v", err)
	}
}

// Checkpoint metadata is checked, not trusted: a forged position is refused when the file is read, and a
// metrics length that does not end a line never cuts metrics.jsonl.
func TestCheckpointMetadataIsChecked(t *testing.T) {
	net := zeroNet(t)
	r := NewRunDir(t.TempDir())
	for _, c := range []struct {
		st   State
		want string
	}{
		{State{Step: -100}, "has step -100 (must be >= 0)"},
		{State{Step: 5, MetricsBytes: -1}, "has metrics_bytes -1 (must be >= 0)"},
		{State{Step: 6, EpochTop1: 9, EpochN: 8}, "has epoch_top1 9 above epoch_n 8"},
		{State{Step: 7, EpochLoss: -2}, "has epoch_loss -2 (must be a finite number >= 0)"},
	} {
		f, err := encodeCheckpoint(net, c.st, []byte("name: x\n"), nil)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(r.Path(), "forged.safetensors")
		if err := safetensors.WriteFile(path, f); err != nil {
			t.Fatal(err)
		}
		want := "checkpoint " + path + ": state metadata " + c.want + ": the file is damaged or was not written by resnet"
		if _, err := LoadCheckpoint(path); err == nil || err.Error() != want {
			t.Errorf("%+v: %v; want %q", c.st, err, want)
		}
	}
	os.WriteFile(r.MetricsPath(), []byte("{\"epoch\":1}\n{\"epoch\":2}\n"), 0o644)
	want := "resume: the checkpoint records 5 bytes of " + r.MetricsPath() + ", which is not the end of a line; the checkpoint metadata is damaged"
	if err := r.TruncateMetrics(5); err == nil || err.Error() != want {
		t.Errorf("TruncateMetrics mid-line: %v; want %q", err, want)
	}
	if err := r.TruncateMetrics(12); err != nil {
		t.Errorf("TruncateMetrics at a line end: %v", err)
	}
}

// --resume of a folder that holds no run says so in those words.
func TestResumePointOfNoRun(t *testing.T) {
	dir := t.TempDir()
	for path, want := range map[string]string{
		dir:                        "resume: " + dir + " is not a run folder (it has no config.yaml and no checkpoints)",
		filepath.Join(dir, "none"): "resume: " + filepath.Join(dir, "none") + " is not a run folder (no such directory)",
	} {
		if _, err := NewRunDir(path).ResumePoint(); err == nil || err.Error() != want {
			t.Errorf("%s: %v; want %q", path, err, want)
		}
	}
}

// zeroNet is cifar_resnet8 with zero weights, for tests where only the checkpoint files matter.
func zeroNet(t *testing.T) *model.Net {
	t.Helper()
	spec, _ := SpecFor(config.ModelConfig{Arch: "cifar_resnet8"}, 10, 32)
	net, err := model.Build(cpu.New(), spec, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(net.Free)
	return net
}
