package scripts

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"resnet/internal/safetensors"
)

// fakeNvidiaSMIs lists n GPUs (nvidia-smi -L).
func fakeNvidiaSMIs(n int) string {
	s := "#!/bin/sh\ncase \"$*\" in\n*-L*)\n"
	for i := range n {
		s += fmt.Sprintf("\techo 'GPU %d: NVIDIA H100 80GB HBM3 (UUID: GPU-%d)'\n", i, i)
	}
	return s + "\t;;\nesac\n"
}

// fakeDDPResnet is bin/resnet's train: it copies the prepared run $FAKE_RUNS/ddp (with --nproc-per-node)
// or $FAKE_RUNS/single into --out, and records its arguments there.
const fakeDDPResnet = `#!/bin/sh
out=; which=single
for a in "$@"; do
	[ "$prev" = --out ] && out=$a
	[ "$a" = --nproc-per-node ] && which=ddp
	prev=$a
done
[ "$1" = train ] || exit 2
mkdir -p "$out" && cp -r "$FAKE_RUNS/$which/." "$out/" && echo "$*" >"$out/args"
`

// writeRun writes a run folder as `resnet train` leaves it: metrics.jsonl and the checkpoint of step 8,
// holding a conv weight scaled by scale (1: the reference values) and BN running statistics shifted by
// bnShift.
func writeRun(t *testing.T, dir string, scale float32, bnShift float32, trainLoss float64) {
	t.Helper()
	w := []float32{0.5, -0.25, 1, 0.125}
	for i := range w {
		w[i] *= scale
	}
	f := &safetensors.File{Metadata: map[string]string{"format": "test"}, Tensors: []safetensors.Tensor{
		safetensors.I64("bn1.num_batches_tracked", []int{}, []int64{8}),
		safetensors.F32("conv1.weight", []int{1, 1, 2, 2}, w),
		safetensors.F32("bn1.running_mean", []int{1}, []float32{0.1 + bnShift}),
		safetensors.F32("bn1.running_var", []int{1}, []float32{0.9 + bnShift}),
		safetensors.F32("momentum.conv1.weight", []int{1, 1, 2, 2}, w),
	}}
	if err := os.MkdirAll(filepath.Join(dir, "checkpoints"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "checkpoints/step-000000008.safetensors"), f); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "metrics.jsonl"),
		fmt.Sprintf(`{"epoch":1,"step":8,"train_loss":%g,"test_err":0.5}`+"\n", trainLoss), 0o644)
}

// gpu-test.sh --ddp on a fake machine: the NCCL tests, the two training runs with the flags that make
// them comparable, and ddp_compare.py's verdict in the summary. The BN running statistics may differ
// (each rank keeps its own); weights 1% apart fail; one GPU is not enough.
func TestGPUTestDDP(t *testing.T) {
	tools := toolsDir(t)
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3 on this machine")
	}
	for _, c := range []struct {
		name     string
		gpus     int
		scale    float32 // the data-parallel run's weights against the one-GPU run's
		code     int
		summary  []string
		ddpArgs  string // what the data-parallel run's arguments include
		oneArgs  string // the one-GPU run's
		noTrains bool
	}{
		{"same weights", 2, 1 + 1.0/65536, 0, []string{
			"PASS ddp NCCL tests (pass/fail/skip 3/0/1,",
			"PASS ddp train ddp (2 GPUs,",
			"PASS ddp train single (1 GPU, 2 micro-batches,",
			"PASS ddp vs accumulate_steps=2: weights and momentum: 2 tensors, worst conv1.weight at 1.53e-05 of its largest value (tolerance 0.001)",
		}, "--nproc-per-node 2", "--set train.accumulate_steps=2", false},
		{"weights apart", 2, 1.01, 1, []string{
			"PASS ddp train ddp (2 GPUs,",
			"FAIL ddp vs accumulate_steps=2: weights and momentum: 2 tensors, worst conv1.weight at 0.01",
		}, "--set train.batch_size=32", "--set dataset.train_size=256", false},
		{"one GPU", 1, 1, 1, []string{"FAIL ddp: this machine has 1 GPU(s); --ddp needs 2 or more"}, "", "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			bundle := gpuBundle(t, fakeDDPResnet, fakeTestsPass)
			writeFile(t, filepath.Join(bundle, "fakebin/nvidia-smi"), fakeNvidiaSMIs(c.gpus), 0o755)
			runs := filepath.Join(bundle, "runs")
			writeRun(t, filepath.Join(runs, "ddp"), c.scale, 0.05, 2.0001)
			writeRun(t, filepath.Join(runs, "single"), 1, 0, 2.0)
			out := filepath.Join(t.TempDir(), "out")
			env := bashEnv(bundle, tools+":"+filepath.Join(bundle, "fakebin"), map[string]string{
				"OUT": out, "RESNET_GPU_ENV_DONE": "1", "FAKE_RUNS": runs, "RESNET_TORCH_PYTHON": python,
			})
			cmd := exec.Command("bash", filepath.Join(bundle, "scripts/gpu-test.sh"), "--ddp")
			cmd.Env, cmd.Dir = env, bundle
			output, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != c.code {
				t.Errorf("exit code %d, want %d\n%s", code, c.code, output)
			}
			summary, err := os.ReadFile(filepath.Join(out, "summary.txt"))
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range c.summary {
				if !strings.Contains(string(summary), "\n"+line) && !strings.HasPrefix(string(summary), line) {
					t.Errorf("summary lacks %q:\n%s\n--- output:\n%s", line, summary, output)
				}
			}
			for which, want := range map[string]string{"ddp": c.ddpArgs, "single": c.oneArgs} {
				args, err := os.ReadFile(filepath.Join(out, "ddp", which, "args"))
				switch {
				case c.noTrains:
					if err == nil {
						t.Errorf("the %s run ran: %s", which, args)
					}
				case err != nil:
					t.Errorf("the %s run did not run: %v\n%s", which, err, output)
				case !strings.Contains(string(args), want) || !strings.Contains(string(args), "--device cuda"):
					t.Errorf("the %s run's arguments %q lack %q or --device cuda", which, args, want)
				}
			}
		})
	}
}
