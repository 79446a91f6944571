package cli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"resnet/internal/train"
)

// eval --ema scores the average of the weights that training kept: the same errors as the run's last
// metrics line gives for it; a checkpoint without an average says so.
func TestEvalEMA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	runJSON(t, "train", "--config", "demo", "--out", dir, "--device", "cpu", "--epochs", "2",
		"--set", "dataset.train_size=64", "--set", "dataset.test_size=40", "--set", "train.batch_size=16",
		"--set", "eval.batch_size=40", "--set", "train.ema_decay=0.8")
	ms, err := train.NewRunDir(dir).ReadMetrics()
	if err != nil {
		t.Fatal(err)
	}
	last := ms[len(ms)-1]
	if last.TestErrEMA == nil {
		t.Fatalf("metrics without the average's scores: %+v", last)
	}
	for _, c := range []struct {
		args []string
		err  float64
		ema  bool
	}{{nil, last.TestErr, false}, {[]string{"--ema"}, *last.TestErrEMA, true}} {
		var rep evalReport
		if err := json.Unmarshal([]byte(runJSON(t, append([]string{"eval", "--checkpoint", dir, "--json"}, c.args...)...)), &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Top1Err != c.err || rep.Models[0].EMA != c.ema {
			t.Errorf("eval %v: top-1 error %v (ema %v), training's last evaluation %v", c.args, rep.Top1Err, rep.Models[0].EMA, c.err)
		}
	}
	plain := filepath.Join(t.TempDir(), "plain")
	runJSON(t, "train", "--config", "demo", "--out", plain, "--device", "cpu", "--epochs", "1",
		"--set", "dataset.train_size=32", "--set", "dataset.test_size=16", "--set", "train.batch_size=16")
	code, _, stderr := runCLI(t, "eval", "--checkpoint", plain, "--ema")
	if code == 0 || !strings.Contains(stderr, "holds no average of its weights: its run trained without train.ema_decay") {
		t.Errorf("eval --ema of a run without an average: exit %d, %q", code, stderr)
	}
}
