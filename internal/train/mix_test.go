package train

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"resnet/internal/backend"
	"resnet/internal/config"
	"resnet/internal/cpu"
)

// mixGolden is testdata/mix_golden.json, written by scripts/mix_golden.py.
type mixGolden struct {
	Cases []struct {
		Name, Kind  string
		Eps, Lam    float64
		Rx, Ry      int
		Shape       []int
		Classes     int
		Images      []float32
		Labels      []int32
		Logits      []float32
		MixedImages []float32 `json:"mixed_images"`
		Targets     []float32
		Loss        float64
		Grad        []float32
	}
}

// The mixer and the soft-target loss against torchvision's v2.MixUp and v2.CutMix and PyTorch's
// cross_entropy with label_smoothing, given the same draws: the same mixed images and targets, bit for bit,
// and the same loss and logit gradient up to float32 rounding.
func TestMixMatchesTorchvision(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "mix_golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g mixGolden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Cases) != 5 {
		t.Fatalf("%d cases in mix_golden.json, want 5", len(g.Cases))
	}
	dev := cpu.New()
	for _, c := range g.Cases {
		t.Run(c.Name, func(t *testing.T) {
			n, ch, h, w := c.Shape[0], c.Shape[1], c.Shape[2], c.Shape[3]
			m := &mixer{smoothing: c.Eps, classes: c.Classes}
			d := mixDraw{kind: map[string]mixKind{"none": mixNone, "mixup": mixUp, "cutmix": cutMix}[c.Kind], lam: c.Lam, rx: c.Rx, ry: c.Ry}
			x := slices.Clone(c.Images)
			targets := m.apply(d, x, c.Labels, ch, h, w)
			if i := firstBitDifference(x, c.MixedImages); i >= 0 {
				t.Errorf("image value %d is %v, torchvision's %v", i, x[i], c.MixedImages[i])
			}
			if i := firstBitDifference(targets, c.Targets); i >= 0 {
				t.Errorf("target %d (example %d, class %d) is %v, PyTorch's %v", i, i/c.Classes, i%c.Classes, targets[i], c.Targets[i])
			}
			logits, tt := tensorOf(t, dev, c.Logits, n, c.Classes), tensorOf(t, dev, targets, n, c.Classes)
			loss, dl := tensorOf(t, dev, nil, n), tensorOf(t, dev, nil, n, c.Classes)
			if err := dev.SoftTargetCrossEntropy(logits, tt, loss, dl, 1/float32(n)); err != nil {
				t.Fatal(err)
			}
			lv, gv := download(t, dev, loss), download(t, dev, dl)
			var mean float64
			for _, v := range lv {
				mean += float64(v) / float64(n)
			}
			if math.Abs(mean-c.Loss) > 1e-6*math.Abs(c.Loss) {
				t.Errorf("loss %v, PyTorch %v", mean, c.Loss)
			}
			for i := range gv {
				if math.Abs(float64(gv[i]-c.Grad[i])) > 1e-7 {
					t.Errorf("dlogits[%d] %v, PyTorch %v", i, gv[i], c.Grad[i])
				}
			}
		})
	}
}

// Each step's draw depends on (seed, step) alone; both kinds come up when both alphas are set; mix_prob
// leaves its share of batches unmixed; lam follows Beta(alpha, alpha) (mean 1/2, variance 1/(4(2 alpha+1))).
func TestMixDraws(t *testing.T) {
	m := newMixer(config.TrainConfig{MixupAlpha: 0.2, CutMixAlpha: 1, MixProb: 0.6}, 10)
	counts := map[mixKind]int{}
	var lams []float64
	const steps = 20000
	for step := range int64(steps) {
		d := m.draw(7, step, 32, 32)
		if d != m.draw(7, step, 32, 32) {
			t.Fatalf("step %d drew %+v, then something else", step, d)
		}
		counts[d.kind]++
		if d.kind == mixUp {
			lams = append(lams, d.lam)
		}
		if d.kind == cutMix && (d.rx < 0 || d.rx >= 32 || d.ry < 0 || d.ry >= 32) {
			t.Fatalf("box centre (%d, %d) outside 32x32", d.rx, d.ry)
		}
	}
	if f := float64(counts[mixNone]) / steps; math.Abs(f-0.4) > 0.02 {
		t.Errorf("%.3f of batches unmixed, want 0.4", f)
	}
	if math.Abs(float64(counts[mixUp]-counts[cutMix]))/steps > 0.03 {
		t.Errorf("mixup %d and CutMix %d batches, want about as many", counts[mixUp], counts[cutMix])
	}
	var mean, sq float64
	for _, l := range lams {
		mean += l / float64(len(lams))
	}
	for _, l := range lams {
		sq += (l - mean) * (l - mean) / float64(len(lams))
	}
	if want := 1 / (4 * (2*0.2 + 1)); math.Abs(mean-0.5) > 0.02 || math.Abs(sq-want) > 0.02 {
		t.Errorf("mixup lam mean %.3f variance %.3f, want 0.5 and %.3f (Beta(0.2, 0.2))", mean, sq, want)
	}
	if newMixer(config.TrainConfig{MixProb: 1}, 10) != nil {
		t.Error("a config without smoothing or mixing has a mixer")
	}
}

func firstBitDifference(a, b []float32) int {
	if len(a) != len(b) {
		return 0
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i
		}
	}
	return -1
}

func tensorOf(t *testing.T, dev *cpu.Device, vals []float32, shape ...int) backend.Tensor {
	t.Helper()
	x, err := dev.Alloc(backend.Shape(shape), backend.F32, backend.NCHW)
	if err != nil {
		t.Fatal(err)
	}
	if vals != nil {
		if err := dev.Upload(x, vals); err != nil {
			t.Fatal(err)
		}
	}
	return x
}

func download(t *testing.T, dev *cpu.Device, x backend.Tensor) []float32 {
	t.Helper()
	v := make([]float32, x.Numel())
	if err := dev.Download(v, x); err != nil {
		t.Fatal(err)
	}
	return v
}

// A run with label smoothing, mixup and CutMix is deterministic and resumes exactly: stopped mid-epoch and
// resumed, it ends with the metrics and weights of an uninterrupted run; and the mixing changes training
// (its first epoch's loss differs from a plain run's).
func TestMixedRunResumesExactly(t *testing.T) {
	cfg := smallConfig(2)
	cfg.Train.LabelSmoothing, cfg.Train.MixupAlpha, cfg.Train.CutMixAlpha, cfg.Train.MixProb = 0.1, 0.2, 1, 0.9
	root := t.TempDir()
	want := resumeMatchesUninterrupted(t, cfg, root, 3)
	plain := smallConfig(2)
	if _, err := runOnce(t, plain, filepath.Join(root, "plain"), false, nil, nil); err != nil {
		t.Fatal(err)
	}
	p, _ := NewRunDir(filepath.Join(root, "plain")).ReadMetrics()
	if p[0].TrainLoss == want[0].TrainLoss {
		t.Errorf("mixing left the training loss as it was (%v)", p[0].TrainLoss)
	}
}

// resumeMatchesUninterrupted trains cfg in root/full, and in root/stopped stopped after step stopAt and
// resumed, and fails unless both end with the same metrics (timing aside) and bit-identical checkpoint
// tensors. It returns the uninterrupted run's metrics.
func resumeMatchesUninterrupted(t *testing.T, cfg config.Config, root string, stopAt int64) []Metrics {
	t.Helper()
	full := filepath.Join(root, "full")
	if _, err := runOnce(t, cfg, full, false, nil, nil); err != nil {
		t.Fatal(err)
	}
	stopped := filepath.Join(root, "stopped")
	stop := make(chan struct{})
	if _, err := runOnce(t, cfg, stopped, false, stop, func(st *State) error {
		if st.Step == stopAt {
			close(stop)
		}
		return nil
	}); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("stopped run returned %v, want ErrInterrupted", err)
	}
	if _, err := runOnce(t, cfg, stopped, true, nil, nil); err != nil {
		t.Fatal(err)
	}
	want, _ := NewRunDir(full).ReadMetrics()
	got, _ := NewRunDir(stopped).ReadMetrics()
	if len(want) != cfg.Train.Epochs || !reflect.DeepEqual(stripTiming(got), stripTiming(want)) {
		t.Fatalf("resumed metrics %+v\nuninterrupted %+v", got, want)
	}
	a, b := finalTensors(t, full), finalTensors(t, stopped)
	for _, x := range a.Tensors {
		y, ok := b.Get(x.Name)
		if !ok || !bytes.Equal(x.Data, y.Data) {
			t.Fatalf("tensor %s differs after the resume", x.Name)
		}
	}
	return want
}
