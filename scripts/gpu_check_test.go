package scripts

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Fakes of what gpu-check.sh runs on a GPU machine. Each prints what the real one would, in the form the
// script reads: the real ones' JSON is indented with one key per line.
const (
	fakeNvidiaSMI = `#!/bin/sh
case "$*" in
*--query-gpu*) echo "NVIDIA H100 80GB HBM3, 580.65.06, 81559, 9.0" ;;
*) echo "| NVIDIA-SMI 580.65.06    Driver Version: 580.65.06    CUDA Version: 13.0 |" ;;
esac
`
	// A python with torch: "-" is gpu-env.sh asking for its site-packages; anything else is
	// bench_pytorch.py, 1000 img/s in fp32, 2000 with TF32, 2500 in bf16, 3000 in bf16 with channels_last;
	// ten times that for cifar_resnet56.
	fakeTorchPython = `#!/bin/sh
if [ "$1" = - ]; then cat >/dev/null; exit 0; fi
ips=1000
case "$*" in *--channels-last*) ips=3000 ;; *--tf32*) ips=2000 ;; *"--precision bf16"*) ips=2500 ;; esac
case "$*" in *cifar_resnet56*) ips=${ips}0 ;; esac
printf '{\n  "model": "x",\n  "images_per_sec": %s,\n  "step_ms": 250.0,\n  "peak_device_bytes": 2147483648\n}\n' "$ips"
`
	// bin/resnet: bench at 800 img/s (1600 with TF32, 1200 in bf16, 1400 in bf16 NHWC, 1500 with graphs), the demo at 30.5%
	// test error on the GPU (31.5% in bf16) and 29.7% on the CPU.
	fakeResnet = `#!/bin/sh
cmd=$1; shift
out=; dev=; prec=fp32; layout=nchw; graphs=
while [ $# -gt 0 ]; do
	case $1 in
	--out | --checkpoint) out=$2; shift ;;
	--device) dev=$2; shift ;;
	--precision) prec=$2; shift ;;
	--layout) layout=$2; shift ;;
	--graphs) graphs=1 ;;
	--set) case $2 in cuda.precision=*) prec=${2#*=} ;; esac; shift ;;
	esac
	shift
done
case $cmd in
version) printf 'resnet v9.9.9\ngo1.26 linux/amd64\nbackends: cpu, cuda\n' ;;
bench)
	ips=800; [ -n "$RESNET_CUDA_TF32" ] && ips=1600
	[ "$prec" = bf16 ] && ips=1200; [ "$layout" = nhwc ] && ips=1400; [ -n "$graphs" ] && ips=1500
	printf '{\n  "images_per_sec": %s,\n  "step_ms": 320.0,\n  "peak_rss_bytes": 5,\n  "peak_device_bytes": 1073741824\n}\n' "$ips" ;;
train)
	mkdir -p "$out" && echo "$dev $prec" >"$out/device"
	echo "epoch 4/4  step 624  train loss 0.8000 err 30.00%  test loss 0.9 err 30.00% top-5 1.00%  5000 img/s" ;;
eval)
	err=0.297; [ "$(cat "$out/device")" = "cuda fp32" ] && [ "$dev" = cuda ] && err=0.305
	[ "$(cat "$out/device")" = "cuda bf16" ] && err=0.315
	printf '{\n  "checkpoint": "%s",\n  "loss": 0.9,\n  "top1_err": %s,\n  "top5_err": 0.01,\n  "models": [\n    {\n      "top1_err": 1\n    }\n  ]\n}\n' "$out" "$err" ;;
esac
`
	fakeTestsPass = `#!/bin/sh
[ "$RESNET_REQUIRE_GPU" = 1 ] || exit 3
printf -- '--- PASS: TestConv (0.10s)\n--- PASS: TestBatchNorm (0.10s)\n--- PASS: TestCollectivesOneRank (0.01s)\n--- SKIP: TestMulti (0.00s)\nPASS\n'
`
	fakeTestsFail = `#!/bin/sh
printf -- '--- PASS: TestConv (0.10s)\n--- FAIL: TestBatchNorm (0.10s)\n    --- FAIL: TestBatchNorm/relu (0.05s)\nFAIL\n'
exit 1
`
)

// gpuBundle lays out an unpacked GPU bundle in a new directory: the scripts from here, bin/resnet and
// the test binary as given, and returns it.
func gpuBundle(t *testing.T, resnet, tests string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range bundleScripts(t) {
		data, err := os.ReadFile(filepath.Base(name))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, name), string(data), 0o755)
	}
	if resnet != "" {
		writeFile(t, filepath.Join(dir, "bin/resnet"), resnet, 0o755)
	}
	if tests != "" {
		writeFile(t, filepath.Join(dir, "bin/gpu-tests/internal-cuda.test"), tests, 0o755)
	}
	return dir
}

// bundleScripts are the scripts `make gpu-bundle` packs (GPU_BUNDLE_SCRIPTS in the Makefile).
func bundleScripts(t *testing.T) []string {
	t.Helper()
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	mk = []byte(strings.ReplaceAll(string(mk), "\\\n", " ")) // continuation lines
	m := regexp.MustCompile(`(?m)^GPU_BUNDLE_SCRIPTS\s*:?=(.*)$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("the Makefile sets no GPU_BUNDLE_SCRIPTS")
	}
	return strings.Fields(string(m[1]))
}

// Every script that a bundled shell script names is in the bundle.
func TestGPUBundleHasWhatItsScriptsUse(t *testing.T) {
	packed := bundleScripts(t)
	ref := regexp.MustCompile(`scripts/[A-Za-z0-9_.-]+\.(?:sh|py)`)
	for _, name := range packed {
		if !strings.HasSuffix(name, ".sh") {
			continue
		}
		data, err := os.ReadFile(filepath.Base(name))
		if err != nil {
			t.Fatalf("GPU_BUNDLE_SCRIPTS names %s: %v", name, err)
		}
		for _, used := range ref.FindAllString(string(data), -1) {
			if !slices.Contains(packed, used) {
				t.Errorf("%s uses %s, which GPU_BUNDLE_SCRIPTS in the Makefile does not pack", name, used)
			}
		}
	}
	if !slices.Contains(packed, "scripts/gpu-check.sh") {
		t.Errorf("GPU_BUNDLE_SCRIPTS lacks scripts/gpu-check.sh: %v", packed)
	}
}

type checkStage struct {
	Stage   string `json:"stage"`
	Status  string `json:"status"`
	Note    string `json:"note"`
	BoxS    int    `json:"box_s"`
	Seconds *int   `json:"seconds"`
	Runs    []struct {
		ID           string   `json:"id"`
		Status       string   `json:"status"`
		ImagesPerSec *float64 `json:"images_per_sec"`
	} `json:"runs"`
	FailedTests    []string `json:"failed_tests"`
	NCCLOneRank    string   `json:"nccl_one_rank"`
	Top1Difference *float64 `json:"top1_difference"`
}

type checkSummary struct {
	DryRun bool   `json:"dry_run"`
	Resnet string `json:"resnet"`
	GPU    struct {
		Name string `json:"name"`
	} `json:"gpu"`
	Stages []checkStage `json:"stages"`
}

// runGPUCheck runs the bundle's gpu-check.sh with args and returns its exit code, output and summary.
func runGPUCheck(t *testing.T, bundle string, env []string, args ...string) (int, string, checkSummary) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out")
	cmd := exec.Command("bash", append([]string{filepath.Join(bundle, "scripts/gpu-check.sh"), out}, args...)...)
	cmd.Env = env
	cmd.Dir = bundle
	output, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatal(err)
		}
		code = ee.ExitCode()
	}
	var s checkSummary
	data, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatalf("%v\n%s", err, output)
	}
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatalf("summary.json: %v\n%s", err, data)
	}
	md, err := os.ReadFile(filepath.Join(out, "summary.md"))
	if err != nil {
		t.Fatal(err)
	}
	if files, _ := filepath.Glob(filepath.Join(out, "stages", "*.json")); len(files) != len(s.Stages) {
		t.Errorf("%d files in stages/ for %d stages", len(files), len(s.Stages))
	}
	for _, st := range s.Stages {
		if st.Seconds == nil || st.BoxS <= 0 {
			t.Errorf("stage %+v: no seconds or box", st)
		}
	}
	return code, string(output) + "\n--- summary.md:\n" + string(md), s
}

func statuses(s checkSummary) []string {
	var out []string
	for _, st := range s.Stages {
		out = append(out, st.Stage+" "+st.Status)
	}
	return out
}

// The dry run, on a machine without a GPU or libraries: the environment stage reports what is missing,
// the GPU stages are skipped, both summaries are written, and it exits 0.
func TestGPUCheckDryRun(t *testing.T) {
	tools := toolsDir(t)
	bundle := gpuBundle(t, fakeResnet, fakeTestsPass)
	for _, dry := range [][]string{{"--dry-run"}, {"GPU_CHECK_DRY=1"}} {
		env := bashEnv(bundle, tools, nil)
		var args []string
		if strings.Contains(dry[0], "=") {
			env = append(env, dry[0])
		} else {
			args = dry
		}
		code, output, s := runGPUCheck(t, bundle, env, args...)
		if code != 0 {
			t.Errorf("%s: exit code %d\n%s", dry[0], code, output)
		}
		want := []string{"env fail", "tests skipped", "bench skipped", "demo skipped"}
		if got := statuses(s); !slices.Equal(got, want) || !s.DryRun || s.Resnet != "resnet v9.9.9" {
			t.Errorf("%s: stages %v, dry_run %v, resnet %q; want %v, true, resnet v9.9.9\n%s", dry[0], got, s.DryRun, s.Resnet, want, output)
		}
		if note := s.Stages[0].Note; !strings.HasPrefix(note, "nvidia-smi is not installed; gpu-env.sh: not found: cuDNN (libcudnn.so.9), ") {
			t.Errorf("%s: env note %q", dry[0], note)
		}
		for _, line := range []string{
			"No GPU: nvidia-smi is not installed.",
			"| stage | result | time (box) |",
			"| tests | skipped: dry run: no GPU work | 0 s (140 s) |",
			"| demo | skipped: dry run: no GPU work | 0 s (100 s) |",
			"| bench | skipped: dry run: no GPU work | 0 s (210 s) |",
		} {
			if !strings.Contains(output, "\n"+line+"\n") {
				t.Errorf("%s: summary.md lacks the line %q\n%s", dry[0], line, output)
			}
		}
	}
}

// A whole check on a fake GPU machine: every stage runs, the bench table compares each run with
// PyTorch's fp32 run of its model, and the demo's errors are compared. A failing GPU test fails its stage
// (and the exit code) without stopping the stages after it.
func TestGPUCheckOnFakeGPU(t *testing.T) {
	tools := toolsDir(t)
	for _, c := range []struct {
		name, tests string
		code        int
		stages      []string
		nccl        string // the tests stage's record of the one-rank NCCL test
	}{
		{"tests pass", fakeTestsPass, 0, []string{"env pass", "tests pass", "bench pass", "demo pass"}, "pass"},
		{"a test fails", fakeTestsFail, 1, []string{"env pass", "tests fail", "bench pass", "demo pass"}, "not run"},
	} {
		t.Run(c.name, func(t *testing.T) {
			bundle := gpuBundle(t, fakeResnet, c.tests)
			writeFile(t, filepath.Join(bundle, "fakebin/nvidia-smi"), fakeNvidiaSMI, 0o755)
			venv := filepath.Join(bundle, "opt/torch/.venv")
			sp := filepath.Join(venv, "lib/python3.12/site-packages")
			tree(t, venv, "pyvenv.cfg")
			tree(t, sp, "torch/__init__.py", "torchvision/__init__.py")
			wheel(t, sp, "torch", "2.9.0")
			writeFile(t, filepath.Join(venv, "bin/python3"), fakeTorchPython, 0o755)
			tree(t, sp, "nvidia/cudnn/lib/libcudnn.so.9", "nvidia/cu13/lib/libcublas.so.13", "nvidia/cu13/lib/libcublasLt.so.13")
			wheel(t, sp, "nvidia-cudnn-cu13", "9.13.0.50", "nvidia/cudnn/lib/libcudnn.so.9")
			tree(t, bundle, "sys/libz.so.1", "sys/libcuda.so.1")
			env := bashEnv(bundle, tools+":"+filepath.Join(bundle, "fakebin"), map[string]string{
				"RESNET_GPU_SYSTEM_DIRS": filepath.Join(bundle, "sys"),
			})

			code, output, s := runGPUCheck(t, bundle, env)
			if code != c.code {
				t.Errorf("exit code %d, want %d", code, c.code)
			}
			if got := statuses(s); !slices.Equal(got, c.stages) || s.DryRun || s.GPU.Name != "NVIDIA H100 80GB HBM3" {
				t.Errorf("stages %v, dry_run %v, GPU %q; want %v\n%s", got, s.DryRun, s.GPU.Name, c.stages, output)
			}
			if len(s.Stages) != 4 {
				return
			}
			if got := s.Stages[1].NCCLOneRank; got != c.nccl || !strings.Contains(s.Stages[1].Note, "NCCL one rank: "+c.nccl) {
				t.Errorf("tests stage: nccl_one_rank %q, note %q; want %q in both", got, s.Stages[1].Note, c.nccl)
			}
			if c.code != 0 {
				want := []string{"TestBatchNorm"}
				if got := s.Stages[1].FailedTests; !slices.Equal(got, want) || !strings.HasSuffix(s.Stages[1].Note, "; failed: TestBatchNorm") {
					t.Errorf("failed tests %v, note %q; want %v", got, s.Stages[1].Note, want)
				}
			}
			bench := s.Stages[2]
			if len(bench.Runs) != 12 {
				t.Errorf("%d bench runs, want 12: %+v", len(bench.Runs), bench.Runs)
			}
			for _, r := range bench.Runs {
				if r.Status != "pass" || r.ImagesPerSec == nil {
					t.Errorf("run %+v", r)
				}
			}
			if d := s.Stages[3].Top1Difference; d == nil || *d != 0.008 {
				t.Errorf("demo top-1 difference %v, want 0.008", d)
			}
			for _, line := range []string{
				"NVIDIA H100 80GB HBM3 (compute capability 9.0, 81559 MiB), driver 580.65.06 (CUDA 13.0).",
				"Libraries: cuDNN 9.13.0.50 (nvidia-cudnn-cu13), cuBLAS 13, NVRTC not found, NCCL not found, from " + sp + ".",
				"| resnet50 | 256 | resnet | fp32 | NCHW | 800.0 | 320.0 | 1024 | 0.80x |",
				"| resnet50 | 256 | PyTorch 2.9.0 | fp32 | NCHW | 1000.0 | 250.0 | 2048 | 1.00x |",
				"| resnet50 | 256 | PyTorch 2.9.0 | bf16 autocast | NHWC (channels_last) | 3000.0 | 250.0 | 2048 | 3.00x |",
				"| cifar_resnet56 | 128 | resnet | fp32 | NCHW | 800.0 | 320.0 | 1024 | 0.08x |",
				"| resnet50 | 256 | resnet | bf16 | NCHW | 1200.0 | 320.0 | 1024 | 1.20x |",
				"| resnet50 | 256 | PyTorch 2.9.0 | bf16 autocast | NCHW | 2500.0 | 250.0 | 2048 | 2.50x |",
				"| resnet50 | 256 | resnet | bf16 | NHWC | 1400.0 | 320.0 | 1024 | 1.40x |",
				"| resnet50 | 256 | resnet | bf16, CUDA graphs | NHWC | 1500.0 | 320.0 | 1024 | 1.50x |",
				"| resnet50 | 256 | resnet | TF32 | NCHW | 1600.0 | 320.0 | 1024 | 1.60x |",
				"| resnet50 | 256 | PyTorch 2.9.0 | TF32 | NCHW | 2000.0 | 250.0 | 2048 | 2.00x |",
				"| demo | pass: top-1 error GPU 30.5%, CPU 29.7%; GPU bf16 31.5% |",
				"| cuda-bf16 | pass | 31.50% | 1.00% |",
			} {
				if !strings.Contains(output, "\n"+line) {
					t.Errorf("summary.md lacks %q\n%s", line, output)
				}
			}
		})
	}
}
