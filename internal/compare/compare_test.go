package compare

import (
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"resnet/internal/cpu"
	"resnet/internal/jsonnum"
	"resnet/internal/model"
	"resnet/internal/train"
)

func TestExpand(t *testing.T) {
	for in, want := range map[string]string{
		"res34": "resnet34", "res50": "resnet50", "cifar_res56": "cifar_resnet56",
		"plain34": "plain34", "resnet50": "resnet50", "cifar_plain20": "cifar_plain20", "my.yaml": "my.yaml",
		"ResNet-34": "resnet34", "configs/resnet50.yaml": "configs/resnet50.yaml",
		"resnext50": "resnext50_32x4d", "ResNeXt-50-32x4d": "resnext50_32x4d", "wide_resnet50": "wide_resnet50_2",
	} {
		if got := Expand(in); got != want {
			t.Errorf("Expand(%q) = %q, want %q", in, got, want)
		}
	}
}

// tinyRecipe is the demo recipe cut down to seconds.
var tinyRecipe = []string{
	"dataset.train_size=48", "dataset.test_size=24", "train.batch_size=16", "eval.batch_size=24",
	"train.epochs=2", "device=cpu",
}

func TestPlanSharesTheRecipe(t *testing.T) {
	dir := t.TempDir()
	es, err := Plan([]string{"plain34", "res34"}, "", []string{"dataset.root=/data/in"}, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].Name != "plain34" || es[1].Name != "resnet34" || es[1].RunDir != filepath.Join(dir, "resnet34") {
		t.Fatalf("entries %+v", es)
	}
	a, b := es[0].Config, es[1].Config
	if a.Model.Arch != "plain34" || b.Model.Arch != "resnet34" {
		t.Errorf("archs %s, %s", a.Model.Arch, b.Model.Arch)
	}
	a.Model, a.Name = b.Model, b.Name
	ya, _ := a.YAML()
	yb, _ := b.YAML()
	if !bytes.Equal(ya, yb) || a.Dataset.Root != "/data/in" {
		t.Errorf("recipes differ beyond the model:\n%s\n---\n%s", ya, yb)
	}

	// ResNet-50 against the ResNeXt of its cost: each preset keeps its architecture, the recipe is the
	// first's.
	es, err = Plan([]string{"resnet50", "resnext50"}, "", nil, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if es[1].Name != "resnext50_32x4d" || es[1].Config.Model.Arch != "resnext50_32x4d" || es[1].Config.Train.Epochs != 90 {
		t.Errorf("resnext50 entry: %s, %+v, %+v", es[1].Name, es[1].Config.Model, es[1].Config.Train)
	}
	if err := Describe(es, 1000, 224); err != nil || es[1].Stats.Params != 25028904 || es[1].Stats.MACs != 4230479872 {
		t.Errorf("Describe: %v; resnext50_32x4d %+v", err, es[1].Stats)
	}

	// Zoo models without a preset take the recipe's model section with their architecture.
	es, err = Plan([]string{"cifar_plain8", "cifar_res8"}, "demo", tinyRecipe, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if es[0].Config.Model.Arch != "cifar_plain8" || es[1].Name != "cifar_resnet8" || es[1].Config.Dataset.TrainSize != 48 {
		t.Errorf("entries %+v / %+v", es[0].Config, es[1].Config)
	}

	for _, c := range []struct {
		args []string
		base string
		want string
	}{
		{[]string{"res34"}, "", "at least two models"},
		{[]string{"res34", "resnet34"}, "", `both named "resnet34"`},
		{[]string{"cifar_res8", "cifar_plain8"}, "", "cifar_resnet8 is a model without a preset; give the recipe"},
		{[]string{"res34", "vgg16"}, "", `compare vgg16: config: no such file or preset "vgg16"`},
	} {
		if _, err := Plan(c.args, c.base, nil, dir, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Plan(%v): %v, want an error containing %q", c.args, err, c.want)
		}
	}
	es, _ = Plan([]string{"res34", "cifar_res20"}, "resnet34", nil, dir, nil)
	if err := Describe(es, 10, 32); err == nil || !strings.Contains(err.Error(), "one family") {
		t.Errorf("mixed families: %v", err)
	}
}

// A whole comparison on the synthetic set: train, summarise, draw; then the same call reuses the finished
// runs, an interrupted run resumes, and a run of another recipe is refused.
// An SE-ResNet compares with the ResNet it extends under the ResNet's recipe.
func TestPlanSENetAgainstItsResNet(t *testing.T) {
	es, err := Plan([]string{"resnet50", "seresnet50"}, "", nil, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Describe(es, 1000, 224); err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[1].Spec.Name != "seresnet50" || es[1].Stats.Params != 28088024 || es[0].Stats.Params != 25557032 {
		t.Fatalf("entries %+v", es)
	}
	if a, b := es[0].Config.Train, es[1].Config.Train; a.LR != b.LR || a.Epochs != b.Epochs {
		t.Errorf("recipes differ: %+v, %+v", a, b)
	}
}

func TestTrainSummarizeWrite(t *testing.T) {
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	plan := func(sets ...string) []*Entry {
		t.Helper()
		es, err := Plan([]string{"cifar_plain8", "cifar_res8"}, "demo", append(append([]string(nil), tinyRecipe...), sets...), runs, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := Describe(es, 10, 32); err != nil {
			t.Fatal(err)
		}
		return es
	}
	es := plan()
	var log bytes.Buffer
	opt := Options{Device: cpu.New(), Out: &log}
	// Interrupt the first model's training at once: it stops with a checkpoint.
	stop := make(chan struct{})
	close(stop)
	opt.Stop = stop
	if err := Train(es, opt); err == nil {
		t.Fatal("training with a closed stop channel finished")
	}
	if st, err := RunState(es[0].RunDir, 2); err != nil || st != Unfinished {
		t.Fatalf("after the interrupt: state %v, %v; want unfinished", st, err)
	}
	opt.Stop = nil
	log.Reset()
	if err := Train(es, opt); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "cifar_plain8: resuming") || !strings.Contains(log.String(), "cifar_resnet8: training") {
		t.Errorf("progress:\n%s", log.String())
	}
	before, _ := os.ReadFile(train.NewRunDir(es[1].RunDir).MetricsPath())
	log.Reset()
	if err := Train(es, opt); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(train.NewRunDir(es[1].RunDir).MetricsPath())
	if strings.Count(log.String(), "reused") != 2 || !bytes.Equal(before, after) {
		t.Errorf("second call retrained:\n%s", log.String())
	}
	if err := Train(plan("train.lr=0.3"), opt); err == nil || !strings.Contains(err.Error(), "different config") {
		t.Errorf("a run of another recipe: %v", err)
	}

	s, err := Summarize(es, "cpu")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Models) != 2 || s.Models[0].Epochs != 2 || len(s.Models[1].Curve) != 2 || s.Models[1].Steps != 6 ||
		!s.Models[1].Residual || s.Models[0].Residual || s.Models[1].Params != s.Models[0].Params || s.Models[0].Depth != 8 {
		t.Fatalf("summary %+v", s)
	}
	out := filepath.Join(dir, "out")
	if err := Write(out, s); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(out, "curves.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 1200 || b.Dy() != 480 {
		t.Errorf("curves.png is %dx%d, want 1200x480 (two 5x4 inch panels at 120 dpi)", b.Dx(), b.Dy())
	}
	svg, _ := os.ReadFile(filepath.Join(out, "curves.svg"))
	if !bytes.Contains(svg, []byte("<svg")) || !bytes.Contains(svg, []byte("residual networks")) || !bytes.Contains(svg, []byte("cifar_plain8")) {
		t.Errorf("curves.svg lacks the panels or the legend")
	}
	md, _ := os.ReadFile(filepath.Join(out, "summary.md"))
	if !bytes.Contains(md, []byte("| cifar_resnet8 | 8 | 75,290 |")) || !bytes.Contains(md, []byte("shortcuts at 8 layers")) {
		t.Errorf("summary.md:\n%s", md)
	}
	var back Summary
	js, _ := os.ReadFile(filepath.Join(out, "summary.json"))
	if err := json.Unmarshal(js, &back); err != nil || len(back.Models) != 2 || back.Models[0].FinalTrainErr != s.Models[0].FinalTrainErr {
		t.Errorf("summary.json: %v %+v", err, back)
	}
}

func TestFindings(t *testing.T) {
	ms := []ModelSummary{
		{Name: "p20", Depth: 20, FinalTrainErr: 0.10, FinalTestErr: 0.12},
		{Name: "p56", Depth: 56, FinalTrainErr: 0.15, FinalTestErr: 0.17},
		{Name: "r20", Depth: 20, Residual: true, FinalTrainErr: 0.09, FinalTestErr: 0.11},
		{Name: "r56", Depth: 56, Residual: true, FinalTrainErr: 0.05, FinalTestErr: 0.08},
	}
	f := strings.Join(findings(ms), "\n")
	for _, want := range []string{
		"plain nets, degradation: p56 (56 layers) ends at 15.00% training error, p20 (20 layers) at 10.00% (+5.00 points",
		"residual nets, no degradation: r56 (56 layers) ends at 5.00% training error, r20 (20 layers) at 9.00% (-4.00 points",
		"shortcuts at 56 layers: r56 ends at 5.00% training / 8.00% test error, p56 at 15.00% / 17.00%",
	} {
		if !strings.Contains(f, want) {
			t.Errorf("findings lack %q:\n%s", want, f)
		}
	}
}

// RunState and Summarize read a run through train.RunDir: its metrics file, its checkpoints folder, and
// its errors naming the file and line.
func TestRunsAreReadThroughRunDir(t *testing.T) {
	dir := t.TempDir()
	run := train.NewRunDir(filepath.Join(dir, "r8"))
	state := func(want State) {
		t.Helper()
		if st, err := RunState(run.Path(), 2); st != want || err != nil {
			t.Errorf("RunState = %v, %v; want %v", st, err, want)
		}
	}
	state(NoRun)
	if err := os.MkdirAll(run.CheckpointDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	state(Unfinished)
	for epoch := 1; epoch <= 2; epoch++ {
		m := train.Metrics{Epoch: epoch, Step: int64(4 * epoch), TrainErr: jsonnum.Float(0.5 / float64(epoch)), TestErr: 0.6 / float64(epoch), ImagesPerSec: 100, EpochSeconds: 2}
		if err := run.AppendMetrics(m); err != nil {
			t.Fatal(err)
		}
		if epoch == 1 {
			state(Unfinished)
		}
	}
	state(Finished)
	es := []*Entry{{Arg: "r8", Name: "r8", RunDir: run.Path(), Spec: model.Spec{Name: "cifar_resnet8"}}}
	s, err := Summarize(es, "cpu")
	if err != nil {
		t.Fatal(err)
	}
	if m := s.Models[0]; m.Epochs != 2 || m.Steps != 8 || m.BestEpoch != 2 || m.FinalTestErr != 0.3 || m.ImagesPerSec != 100 || len(m.Curve) != 2 {
		t.Errorf("summary %+v", m)
	}
	os.WriteFile(run.MetricsPath(), []byte("{\"epoch\":1}\nnot json\n"), 0o644)
	want := "compare r8: " + run.MetricsPath() + " line 2: "
	if _, err := Summarize(es, "cpu"); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("a bad metrics line: %v, want it to start %q", err, want)
	}
}

// The summary's time to the best common error: the highest of the models' best test errors, and each
// run's wall-clock time at its first evaluation at or below it (a run without wall_seconds counts its
// training time).
func TestSummaryTimeToCommonError(t *testing.T) {
	write := func(name string, errs, wall []float64) *Entry {
		run := train.NewRunDir(filepath.Join(t.TempDir(), name))
		if err := os.MkdirAll(run.Path(), 0o755); err != nil {
			t.Fatal(err)
		}
		for i, e := range errs {
			m := train.Metrics{Epoch: i + 1, Step: int64(i + 1), TestErr: e, EpochSeconds: 4, ImagesPerSec: 10}
			if wall != nil {
				m.WallSeconds = wall[i]
			}
			if err := run.AppendMetrics(m); err != nil {
				t.Fatal(err)
			}
		}
		return &Entry{Arg: name, Name: name, RunDir: run.Path(), Spec: model.Spec{Name: "cifar_resnet8"}}
	}
	es := []*Entry{
		write("fast", []float64{0.5, 0.3}, []float64{10, 20}),
		write("slow", []float64{0.6, 0.4, 0.35}, []float64{5, 11, 30}),
		write("old", []float64{0.7, 0.34}, nil),
	}
	s, err := Summarize(es, "cpu")
	if err != nil {
		t.Fatal(err)
	}
	if s.CommonTestErr != 0.35 {
		t.Errorf("common error %v, want 0.35 (slow's best, the worst of the bests)", s.CommonTestErr)
	}
	for i, want := range []float64{20, 30, 8} {
		if got := s.Models[i].SecondsToCommonErr; got != want {
			t.Errorf("%s: %v s to the common error, want %v", s.Models[i].Name, got, want)
		}
	}
	if md := string(s.Markdown()); !strings.Contains(md, "time to 35.00% test err |") || !strings.Contains(md, "| 20.0 s |\n") {
		t.Errorf("markdown lacks the time-to-error column:\n%s", md)
	}
}
