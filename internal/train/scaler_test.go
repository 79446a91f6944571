package train

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"resnet/internal/config"
	"resnet/internal/model"
)

// scalerGolden is testdata/grad_scaler_golden.json, written by scripts/grad_scaler_golden.py from
// torch.amp.GradScaler itself.
type scalerGolden struct {
	Cases []struct {
		Name           string  `json:"name"`
		InitScale      float64 `json:"init_scale"`
		InitScaleBits  uint32  `json:"init_scale_bits"`
		GrowthInterval int     `json:"growth_interval"`
		Steps          []struct {
			Overflow      bool   `json:"overflow"`
			Stepped       bool   `json:"stepped"`
			ScaleBits     uint32 `json:"scale_bits"`
			GrowthTracker int    `json:"growth_tracker"`
		} `json:"steps"`
	} `json:"cases"`
}

func readScalerGolden(t *testing.T) scalerGolden {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "grad_scaler_golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g scalerGolden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Cases) < 4 {
		t.Fatalf("%d golden cases, want 4", len(g.Cases))
	}
	return g
}

// The update rule gives GradScaler's scale, bit for bit, and its growth tracker after every step of each
// golden pattern: backing off and growing, growth that would reach infinity, subnormal scales.
func TestLossScaleRuleMatchesGradScaler(t *testing.T) {
	for _, c := range readScalerGolden(t).Cases {
		scale, good := float32(c.InitScale), 0
		if math.Float32bits(scale) != c.InitScaleBits {
			t.Fatalf("%s: init scale %v is not the golden float32", c.Name, c.InitScale)
		}
		for i, s := range c.Steps {
			if s.Stepped == s.Overflow {
				t.Fatalf("%s step %d: PyTorch stepped %v on overflow %v", c.Name, i+1, s.Stepped, s.Overflow)
			}
			scale, good = updateScale(scale, good, s.Overflow, c.GrowthInterval)
			if math.Float32bits(scale) != s.ScaleBits || good != s.GrowthTracker {
				t.Fatalf("%s step %d: scale %v (bits %#x), tracker %d; GradScaler has bits %#x, tracker %d",
					c.Name, i+1, scale, math.Float32bits(scale), good, s.ScaleBits, s.GrowthTracker)
			}
		}
	}
}

// The rule by hand: halve and restart on overflow, double after growthInterval good steps in a row,
// never to infinity.
func TestLossScaleRuleByHand(t *testing.T) {
	for _, tc := range []struct {
		scale          float32
		good, interval int
		found          bool
		wantScale      float32
		wantGood       int
	}{
		{65536, 0, 2000, false, 65536, 1},
		{65536, 1998, 2000, false, 65536, 1999},
		{65536, 1999, 2000, false, 131072, 0},
		{65536, 1999, 2000, true, 32768, 0},
		{1, 0, 1, false, 2, 0},
		{0x1p127, 0, 1, false, 0x1p127, 0},
		{0x1p-149, 0, 1, true, 0, 0},
	} {
		s, g := updateScale(tc.scale, tc.good, tc.found, tc.interval)
		if s != tc.wantScale || g != tc.wantGood {
			t.Errorf("updateScale(%v, %d, %v, %d) = %v, %d; want %v, %d", tc.scale, tc.good, tc.found, tc.interval,
				s, g, tc.wantScale, tc.wantGood)
		}
	}
}

// scalerConfig is smallConfig with a dynamic loss scale.
func scalerConfig(epochs int, init float64, interval int) config.Config {
	c := smallConfig(epochs)
	c.Train.LossScale, c.Train.LossScaleInit, c.Train.LossScaleGrowthInterval = config.LossScaleDynamic, init, interval
	return c
}

// stepRecord is what a training step left: the scale state, and whether the update ran.
type stepRecord struct {
	scale   float32
	good    int
	stepped bool
	tracked int64
}

// recordSteps runs cfg in dir with the gradients of the steps that overflow (counted from 1) made
// infinite, as an fp16 overflow leaves them, and records every step.
func recordSteps(t *testing.T, cfg config.Config, dir string, overflow func(step int64) bool) ([]stepRecord, error) {
	var recs []stepRecord
	var net *model.Net
	var before []float32
	fc := func() []float32 {
		p, _ := net.Param("fc.weight")
		v, err := net.Get(p)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	poison := overflowGradient(float32(math.Inf(1)), overflow)
	err := runHooked(t, cfg, dir, false, io.Discard, nil, Options{
		afterBackward: func(n *model.Net, st *State) error {
			net = n
			before = fc()
			return poison(n, st)
		},
		afterStep: func(st *State) error {
			recs = append(recs, stepRecord{st.LossScale, st.LossScaleGoodSteps, !slices.Equal(before, fc()), net.BatchesTracked})
			return nil
		},
	})
	return recs, err
}

// The trainer with a dynamic scale, on GradScaler's golden pattern of overflowing steps (gradients made
// infinite after backward, as PyTorch's script makes them): the same steps are skipped, and the scale and
// its growth tracker after every step are GradScaler's, bit for bit. An overflow is not divergence (the
// run uses train.on_nonfinite: stop), the forward pass of a skipped step still counts in the BN
// statistics, and metrics.jsonl counts the skipped steps and gives the scale.
func TestDynamicLossScaleFollowsGradScaler(t *testing.T) {
	c := readScalerGolden(t).Cases[0]
	if c.Name != "backoff_and_growth" || len(c.Steps)%4 != 0 {
		t.Fatalf("golden case %s of %d steps; want backoff_and_growth, whole epochs of 4", c.Name, len(c.Steps))
	}
	cfg := scalerConfig(len(c.Steps)/4, c.InitScale, c.GrowthInterval)
	dir := t.TempDir()
	recs, err := recordSteps(t, cfg, dir, func(step int64) bool { return c.Steps[step-1].Overflow })
	if err != nil {
		t.Fatal(err)
	}
	skipped := make([]int64, cfg.Train.Epochs)
	for i, s := range c.Steps {
		r := recs[i]
		if math.Float32bits(r.scale) != s.ScaleBits || r.good != s.GrowthTracker || r.stepped != s.Stepped ||
			r.tracked != int64(i+1) {
			t.Errorf("step %d: scale %v, tracker %d, stepped %v, BN batches %d; GradScaler: scale bits %#x, tracker %d, stepped %v",
				i+1, r.scale, r.good, r.stepped, r.tracked, s.ScaleBits, s.GrowthTracker, s.Stepped)
		}
		if s.Overflow {
			skipped[i/4]++
		}
	}
	ms, err := NewRunDir(dir).ReadMetrics()
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		want := float64(math.Float32frombits(c.Steps[4*i+3].ScaleBits))
		if m.LossScale == nil || *m.LossScale != want || m.SkippedSteps == nil || *m.SkippedSteps != skipped[i] || m.NonFiniteSteps != 0 {
			t.Errorf("epoch %d: loss_scale %v, skipped_steps %v, nonfinite_steps %d; want %v, %d, 0", i+1,
				m.LossScale, m.SkippedSteps, m.NonFiniteSteps, want, skipped[i])
		}
	}
	var out bytes.Buffer
	p := newProgress(&out, false, 0)
	p.epochs = cfg.Train.Epochs
	p.metrics(ms[0])
	if !strings.HasSuffix(out.String(), "%)  2 steps skipped for overflow (loss scale now 16384)\n") {
		t.Errorf("the epoch line does not give the skipped steps and the scale: %q", out.String())
	}
}

// A static power-of-two scale multiplies every gradient exactly and the update divides it out exactly:
// the run is bit for bit the unscaled one.
func TestStaticPowerOfTwoLossScaleIsExact(t *testing.T) {
	root := t.TempDir()
	plain, scaled := filepath.Join(root, "plain"), filepath.Join(root, "scaled")
	cfg := smallConfig(2)
	if _, err := runOnce(t, cfg, plain, false, nil, nil); err != nil {
		t.Fatal(err)
	}
	cfg.Train.LossScale = "1024"
	if _, err := runOnce(t, cfg, scaled, false, nil, nil); err != nil {
		t.Fatal(err)
	}
	want, got := finalTensors(t, plain), finalTensors(t, scaled)
	for _, wt := range want.Tensors {
		if gt, ok := got.Get(wt.Name); !ok || !bytes.Equal(gt.Data, wt.Data) {
			t.Errorf("tensor %s differs with a static scale of 1024", wt.Name)
		}
	}
	ms, err := NewRunDir(scaled).ReadMetrics()
	if err != nil {
		t.Fatal(err)
	}
	if m := ms[len(ms)-1]; m.LossScale == nil || *m.LossScale != 1024 || *m.SkippedSteps != 0 {
		t.Errorf("metrics: loss_scale %v, skipped_steps %v; want 1024, 0", m.LossScale, m.SkippedSteps)
	}
	if ms0, _ := NewRunDir(plain).ReadMetrics(); ms0[0].LossScale != nil || ms0[0].SkippedSteps != nil {
		t.Errorf("a run without scaling has loss_scale %v, skipped_steps %v in its metrics", ms0[0].LossScale, ms0[0].SkippedSteps)
	}
}

// A run with a dynamic scale stopped in the middle of an epoch, between a backoff and the next growth,
// resumes with the scale and its growth tracker from the checkpoint: metrics and weights are those of the
// uninterrupted run.
func TestDynamicLossScaleResumesExactly(t *testing.T) {
	cfg := scalerConfig(4, 65536, 3)
	root := t.TempDir()
	full, stopped := filepath.Join(root, "full"), filepath.Join(root, "stopped")
	// Overflows at steps 2 and 7: at step 9 the scale is 32768 with 2 good steps, one short of growing.
	overflow := overflowGradient(float32(math.Inf(1)), func(step int64) bool { return step == 2 || step == 7 })
	if err := runHooked(t, cfg, full, false, io.Discard, nil, Options{afterBackward: overflow}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var atStop State
	err := runHooked(t, cfg, stopped, false, io.Discard, stop, Options{afterBackward: overflow, afterStep: func(st *State) error {
		if st.Step == 9 {
			atStop = *st
			close(stop)
		}
		return nil
	}})
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("stopped run returned %v, want ErrInterrupted", err)
	}
	if atStop.LossScale != 32768 || atStop.LossScaleGoodSteps != 2 {
		t.Fatalf("at the stop the scale is %v with %d good steps, want 32768 and 2", atStop.LossScale, atStop.LossScaleGoodSteps)
	}
	ck, err := OpenCheckpoint(stopped)
	if err != nil {
		t.Fatal(err)
	}
	if ck.State.LossScale != atStop.LossScale || ck.State.LossScaleGoodSteps != atStop.LossScaleGoodSteps || !ck.State.LossScaleDynamic {
		t.Errorf("checkpoint holds scale %v, %d good steps; the run had %v, %d", ck.State.LossScale,
			ck.State.LossScaleGoodSteps, atStop.LossScale, atStop.LossScaleGoodSteps)
	}
	if err := runHooked(t, cfg, stopped, true, io.Discard, nil, Options{afterBackward: overflow}); err != nil {
		t.Fatal(err)
	}
	want, _ := NewRunDir(full).ReadMetrics()
	got, _ := NewRunDir(stopped).ReadMetrics()
	if !reflect.DeepEqual(stripTiming(got), stripTiming(want)) {
		t.Errorf("resumed metrics differ:\n got %+v\nwant %+v", stripTiming(got), stripTiming(want))
	}
	wantF, gotF := finalTensors(t, full), finalTensors(t, stopped)
	for _, wt := range wantF.Tensors {
		if gt, ok := gotF.Get(wt.Name); !ok || !bytes.Equal(gt.Data, wt.Data) {
			t.Errorf("tensor %s differs from the uninterrupted run", wt.Name)
		}
	}
}

// Loss scaling may be turned on when a run resumes: the scale starts at its initial value.
func TestLossScaleTurnedOnAtResume(t *testing.T) {
	cfg := smallConfig(2)
	cfg.Checkpoint.Every = 1
	dir := t.TempDir()
	interruptAt(t, cfg, dir, 4)
	cfg.Train.LossScale, cfg.Train.LossScaleInit = config.LossScaleDynamic, 256
	var first State
	if _, err := runOnce(t, cfg, dir, true, nil, func(st *State) error {
		if first.Step == 0 {
			first = *st
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if first.LossScale != 256 || first.LossScaleGoodSteps != 1 || !first.LossScaleDynamic {
		t.Errorf("first resumed step: scale %v, %d good steps, dynamic %v; want 256, 1, true", first.LossScale,
			first.LossScaleGoodSteps, first.LossScaleDynamic)
	}
}
