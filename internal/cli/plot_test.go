package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"resnet/internal/jsonnum"
	"resnet/internal/train"
)

// plotRun writes a run directory whose metrics.jsonl holds the given evaluated epochs.
func plotRun(t *testing.T, dir string, epochs int) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r := train.NewRunDir(dir)
	for e := 1; e <= epochs; e++ {
		m := train.Metrics{Epoch: e, Step: int64(100 * e), LR: 0.1,
			TrainLoss: jsonnum.Float(2.0 / float64(e)), TrainErr: jsonnum.Float(0.8 / float64(e)),
			TestLoss: jsonnum.Float(2.2 / float64(e)), TestErr: 0.85 / float64(e)}
		if err := r.AppendMetrics(m); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestPlotWritesPNGAndSVG(t *testing.T) {
	tmp := t.TempDir()
	a := plotRun(t, filepath.Join(tmp, "a", "r56"), 3)
	b := plotRun(t, filepath.Join(tmp, "b", "r56"), 2)
	png := filepath.Join(tmp, "curves.png")
	code, out, stderr := runCLI(t, "plot", a, b, "--out", png)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "wrote "+png+" (2 runs)") {
		t.Errorf("stdout %q", out)
	}
	data, err := os.ReadFile(png)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("%s is not a PNG (starts %q)", png, data[:min(8, len(data))])
	}
	svg := filepath.Join(tmp, "curves.svg")
	if code, _, stderr := runCLI(t, "plot", a, b, "--out", svg, "--x", "step"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	data, err = os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	// The two runs share a base name, so the legend gives their paths; the axis is labelled by steps.
	for _, want := range []string{"<svg", a, b, "iterations", "top-1 error", "loss"} {
		if !strings.Contains(s, want) {
			t.Errorf("the SVG lacks %q", want)
		}
	}
}

func TestPlotErrors(t *testing.T) {
	tmp := t.TempDir()
	run := plotRun(t, filepath.Join(tmp, "run"), 2)
	empty := filepath.Join(tmp, "empty")
	if err := os.MkdirAll(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(empty, "metrics.jsonl"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{run, "--out", filepath.Join(tmp, "x.jpg")}, "must be .png or .svg"},
		{[]string{run, "--x", "time"}, "--x must be epoch or step"},
		{[]string{filepath.Join(tmp, "missing")}, "has no metrics.jsonl"},
		{[]string{empty, "--out", filepath.Join(tmp, "e.png")}, "has no evaluation yet"},
	} {
		code, _, stderr := runCLI(t, append([]string{"plot"}, c.args...)...)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("plot %v: exit %d, stderr %q; want an error saying %q", c.args, code, stderr, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(tmp, "x.jpg")); err == nil {
		t.Error("a refused plot wrote its output")
	}
}
