// Package compare trains several networks under one recipe (the same data, data order, seed and
// schedule) and reports them side by side: training and test error curves against iterations in the
// layout of He et al. (2015), Figures 4 and 6 (plain networks left, residual networks right, thin lines
// for training error, bold for test error), and a summary table.
package compare

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"resnet/internal/config"
	"resnet/internal/jsonnum"
	"resnet/internal/model"
	"resnet/internal/train"
)

// Expand turns any spelling of a zoo model (res34, ResNet-34, cifar_res56) into its zoo name, which is
// also its preset's name (resnet34, cifar_resnet56); other arguments (config files) come back unchanged.
func Expand(name string) string {
	canonical, _ := model.CanonicalName(name)
	return canonical
}

// Entry is one network of a comparison: its config (the shared recipe with its own model section) and
// where its run lives.
type Entry struct {
	Arg    string // as given on the command line
	Name   string // the run's name (the preset or config name)
	Config config.Config
	YAML   []byte
	RunDir string
	Spec   model.Spec
	Stats  model.Stats
}

// Plan resolves the arguments into entries. Each argument is a preset name (plain34, resnet34, res34,
// cifar_plain56, ...), a config file, or a model of the zoo without a preset (cifar_resnet8), which then
// takes the recipe's model section with its architecture. The recipe (everything but the model section)
// comes from base, or from the first argument when base is empty. sets (key=value) apply to every config,
// above the RESNET_* environment. Runs go to runRoot/<name>. warn (may be nil) hears the configs' warnings.
func Plan(args []string, base string, sets []string, runRoot string, warn func(string)) ([]*Entry, error) {
	if len(args) < 2 {
		return nil, fmt.Errorf("compare needs at least two models (got %d)", len(args))
	}
	if base == "" {
		base = Expand(args[0])
	}
	recipe, err := config.Load(config.Source{File: base, UseEnv: true, Sets: sets, Warn: warn})
	if err != nil {
		if _, lerr := model.Lookup(base); lerr == nil {
			return nil, fmt.Errorf("compare: %s is a model without a preset; give the recipe (data, schedule) with --base", base)
		}
		return nil, err
	}
	var out []*Entry
	seen := map[string]string{}
	for _, arg := range args {
		name := Expand(arg)
		c, err := config.Load(config.Source{File: name, UseEnv: true, Sets: sets, Warn: warn})
		if err != nil {
			if _, lerr := model.Lookup(name); lerr != nil {
				return nil, fmt.Errorf("compare %s: %w", arg, err)
			}
			// A zoo model without a preset: the recipe's model section with this architecture.
			// model.depth=0: a recipe's depth would otherwise replace the one in the name.
			more := append(append([]string(nil), sets...), "model.arch="+name, "model.depth=0", "name="+name)
			if c, err = config.Load(config.Source{File: base, UseEnv: true, Sets: more, Warn: warn}); err != nil {
				return nil, fmt.Errorf("compare %s: %w", arg, err)
			}
		}
		e := &Entry{Arg: arg, Name: c.Name, Config: recipe}
		e.Config.Model = c.Model
		e.Config.Name = c.Name
		if prev, ok := seen[e.Name]; ok {
			return nil, fmt.Errorf("compare: %s and %s are both named %q; give each model once", prev, arg, e.Name)
		}
		seen[e.Name] = arg
		if e.YAML, err = e.Config.YAML(); err != nil {
			return nil, err
		}
		e.RunDir = filepath.Join(runRoot, e.Name)
		out = append(out, e)
	}
	return out, nil
}

// Describe fills each entry's spec and size for a data set of numClasses classes and square inputs of
// side inputSize, and checks that the models belong to one family.
func Describe(entries []*Entry, numClasses, inputSize int) error {
	for _, e := range entries {
		s, err := train.SpecFor(e.Config.Model, numClasses, inputSize)
		if err != nil {
			return fmt.Errorf("compare %s: %w", e.Arg, err)
		}
		if s.Family != entries[0].Spec.Family && entries[0].Spec.Family != "" {
			return fmt.Errorf("compare: %s is a %s network and %s a %s one; compare models of one family", entries[0].Arg, entries[0].Spec.Family, e.Arg, s.Family)
		}
		e.Spec = s
		if e.Stats, err = model.Describe(s); err != nil {
			return err
		}
	}
	return nil
}

// State says how far a run directory got: no run, an unfinished one (to resume) or a finished one.
type State int

const (
	NoRun State = iota
	Unfinished
	Finished
)

// RunState inspects the run folder dir against the number of epochs the run should train.
func RunState(dir string, epochs int) (State, error) {
	run := train.NewRunDir(dir)
	ms, err := run.ReadMetrics()
	if errors.Is(err, os.ErrNotExist) {
		if run.HoldsRun() { // checkpoints, but no evaluation yet
			return Unfinished, nil
		}
		return NoRun, nil
	}
	if err != nil {
		return NoRun, err
	}
	if len(ms) > 0 && ms[len(ms)-1].Epoch >= epochs {
		return Finished, nil
	}
	return Unfinished, nil
}

// Point is one evaluation of a run: after Epoch epochs (Step iterations).
type Point struct {
	Epoch    int           `json:"epoch"`
	Step     int64         `json:"step"`
	TrainErr jsonnum.Float `json:"train_err"` // null for an epoch without a finite training error
	TestErr  float64       `json:"test_err"`
}

// ModelSummary is one model's row of the summary.
type ModelSummary struct {
	Name          string        `json:"name"`
	Arch          string        `json:"arch"`
	Residual      bool          `json:"residual"`
	Depth         int           `json:"depth"`
	Params        int64         `json:"params"`
	MACs          int64         `json:"macs"`
	RunDir        string        `json:"run_dir"`
	Epochs        int           `json:"epochs"`
	Steps         int64         `json:"steps"`
	FinalTrainErr jsonnum.Float `json:"final_train_err"`
	FinalTestErr  float64       `json:"final_test_err"`
	FinalTop5Err  float64       `json:"final_test_top5_err"`
	BestTestErr   float64       `json:"best_test_err"`
	BestEpoch     int           `json:"best_test_epoch"`
	ImagesPerSec  float64       `json:"images_per_sec"`
	TrainSeconds  float64       `json:"train_seconds"`
	// SecondsToCommonErr is the run's wall-clock time (metrics.jsonl's wall_seconds) at its first
	// evaluation at or below the summary's CommonTestErr.
	SecondsToCommonErr float64 `json:"seconds_to_common_err"`
	Curve              []Point `json:"curve"`
	wall               []float64
	errs               []float64
}

// Summary is the comparison: the shared recipe and each model's results.
type Summary struct {
	Dataset   string         `json:"dataset"`
	TrainSize int            `json:"train_size,omitempty"`
	TestSize  int            `json:"test_size,omitempty"`
	Epochs    int            `json:"epochs"`
	BatchSize int            `json:"batch_size"`
	LR        float64        `json:"lr"`
	Seed      int64          `json:"seed"`
	Device    string         `json:"device"`
	Models    []ModelSummary `json:"models"`
	// CommonTestErr is the best test error every model reached: the highest of their best errors.
	CommonTestErr float64  `json:"common_test_err"`
	Findings      []string `json:"findings"`
}

// Summarize reads every entry's metrics into the summary.
func Summarize(entries []*Entry, device string) (*Summary, error) {
	c := entries[0].Config
	s := &Summary{Dataset: c.Dataset.Name, Epochs: c.Train.Epochs, BatchSize: c.Train.BatchSize, LR: c.Train.LR, Seed: c.Seed, Device: device}
	if c.Dataset.Name == "synthetic" {
		s.TrainSize, s.TestSize = c.Dataset.TrainSize, c.Dataset.TestSize
	}
	for _, e := range entries {
		ms, err := train.NewRunDir(e.RunDir).ReadMetrics()
		if err != nil {
			return nil, fmt.Errorf("compare %s: %w", e.Arg, err)
		}
		if len(ms) == 0 {
			return nil, fmt.Errorf("compare %s: %s has no finished epoch", e.Arg, e.RunDir)
		}
		m := ModelSummary{
			Name: e.Name, Arch: e.Spec.Name, Residual: e.Spec.Residual, Depth: e.Spec.Depth(),
			Params: e.Stats.Params, MACs: e.Stats.MACs, RunDir: e.RunDir, BestTestErr: math.Inf(1),
		}
		var images float64
		for _, x := range ms {
			m.Curve = append(m.Curve, Point{Epoch: x.Epoch, Step: x.Step, TrainErr: x.TrainErr, TestErr: x.TestErr})
			if x.TestErr < m.BestTestErr {
				m.BestTestErr, m.BestEpoch = x.TestErr, x.Epoch
			}
			m.TrainSeconds += x.EpochSeconds
			images += x.ImagesPerSec * x.EpochSeconds
			// A run written before wall_seconds existed gives its training time instead.
			wall := x.WallSeconds
			if wall == 0 {
				wall = m.TrainSeconds
			}
			m.wall, m.errs = append(m.wall, wall), append(m.errs, x.TestErr)
		}
		last := ms[len(ms)-1]
		m.Epochs, m.Steps = last.Epoch, last.Step
		m.FinalTrainErr, m.FinalTestErr, m.FinalTop5Err = last.TrainErr, last.TestErr, last.TestTop5Err
		if m.TrainSeconds > 0 {
			m.ImagesPerSec = images / m.TrainSeconds
		}
		s.Models = append(s.Models, m)
	}
	for _, m := range s.Models {
		s.CommonTestErr = max(s.CommonTestErr, m.BestTestErr)
	}
	for i := range s.Models {
		m := &s.Models[i]
		for j, e := range m.errs {
			if e <= s.CommonTestErr {
				m.SecondsToCommonErr = m.wall[j]
				break
			}
		}
	}
	s.Findings = findings(s.Models)
	return s, nil
}

// findings states, for every pair of models of the same kind (plain or residual) and different depth,
// whether the deeper one ended with a higher training error (the degradation problem) or not; and for
// every depth trained both ways, what the shortcuts changed.
func findings(ms []ModelSummary) []string {
	var out []string
	kind := func(residual bool) string {
		if residual {
			return "residual"
		}
		return "plain"
	}
	for i, a := range ms {
		for _, b := range ms[i+1:] {
			if a.Residual != b.Residual || a.Depth == b.Depth {
				continue
			}
			shallow, deep := a, b
			if deep.Depth < shallow.Depth {
				shallow, deep = deep, shallow
			}
			d := 100 * (deep.FinalTrainErr - shallow.FinalTrainErr)
			verdict := "no degradation"
			if d > 0 {
				verdict = "degradation"
			}
			out = append(out, fmt.Sprintf("%s nets, %s: %s (%d layers) ends at %.2f%% training error, %s (%d layers) at %.2f%% (%+.2f points for the deeper net; test error %.2f%% vs %.2f%%)",
				kind(a.Residual), verdict, deep.Name, deep.Depth, 100*deep.FinalTrainErr, shallow.Name, shallow.Depth, 100*shallow.FinalTrainErr, d, 100*deep.FinalTestErr, 100*shallow.FinalTestErr))
		}
	}
	for _, a := range ms {
		for _, b := range ms {
			if a.Residual || !b.Residual || a.Depth != b.Depth {
				continue
			}
			out = append(out, fmt.Sprintf("shortcuts at %d layers: %s ends at %.2f%% training / %.2f%% test error, %s at %.2f%% / %.2f%%",
				a.Depth, b.Name, 100*b.FinalTrainErr, 100*b.FinalTestErr, a.Name, 100*a.FinalTrainErr, 100*a.FinalTestErr))
		}
	}
	return out
}

// Markdown renders the summary as a Markdown document.
func (s *Summary) Markdown() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# Comparison\n\n")
	data := s.Dataset
	if s.TrainSize > 0 {
		data = fmt.Sprintf("%s (%d training, %d test images)", s.Dataset, s.TrainSize, s.TestSize)
	}
	fmt.Fprintf(&b, "Recipe shared by every model: %s, %d epochs, batch %d, learning rate %g, seed %d, on %s.\n\n", data, s.Epochs, s.BatchSize, s.LR, s.Seed, s.Device)
	fmt.Fprintf(&b, "| model | layers | params | MMACs | final train err | final test err | best test err (epoch) | top-5 test err | images/s | train time | time to %.2f%% test err |\n", 100*s.CommonTestErr)
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, m := range s.Models {
		fmt.Fprintf(&b, "| %s | %d | %s | %.2f | %.2f%% | %.2f%% | %.2f%% (%d) | %.2f%% | %.1f | %s | %s |\n",
			m.Name, m.Depth, thousands(m.Params), float64(m.MACs)/1e6, 100*m.FinalTrainErr, 100*m.FinalTestErr,
			100*m.BestTestErr, m.BestEpoch, 100*m.FinalTop5Err, m.ImagesPerSec, duration(m.TrainSeconds), duration(m.SecondsToCommonErr))
	}
	fmt.Fprintf(&b, "\nThe last column is the wall-clock time each run took to its first evaluation at or below %.2f%%, the best test error every model reached.\n", 100*s.CommonTestErr)
	if len(s.Findings) > 0 {
		b.WriteString("\nFindings:\n\n")
		for _, f := range s.Findings {
			fmt.Fprintf(&b, "- %s\n", f)
		}
	}
	b.WriteString("\nCurves: `curves.png` / `curves.svg` (thin: training error, bold: test error).\n")
	return []byte(b.String())
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func duration(sec float64) string {
	if sec < 60 {
		return fmt.Sprintf("%.1f s", sec)
	}
	return fmt.Sprintf("%dm%02ds", int(sec)/60, int(sec)%60)
}
