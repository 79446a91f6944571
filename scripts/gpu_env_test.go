// Package scripts holds the tests of the shell scripts that run on the GPU machine: gpu-env.sh, which finds
// the CUDA libraries there, and gpu-check.sh, the one prepared check. They run the scripts with bash on fake
// directory trees, so they need no GPU and do not depend on what this machine has installed.
package scripts

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// tools are the commands the scripts (and the fakes the tests write) may run. The tests put links to them,
// and nothing else from this machine, on PATH.
var tools = []string{
	"awk", "basename", "bash", "cat", "chmod", "cp", "cut", "date", "dirname", "env", "grep", "gzip", "head",
	"kill", "ls", "mkdir", "mktemp", "mv", "nice", "nproc", "readlink", "rm", "sed", "sh", "sleep", "sort",
	"tail", "tar", "tee", "timeout", "touch", "tr", "uname", "wc",
}

// toolsDir returns a directory of links to the tools, skipping the test when there is no bash.
func toolsDir(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash on this machine")
	}
	dir := t.TempDir()
	for _, name := range tools {
		p, err := exec.LookPath(name)
		if err != nil {
			continue // a script that needs it fails and says so
		}
		if err := os.Symlink(p, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// tree creates files under root: a path ending in "/" is a directory, "a -> b" a symbolic link, anything
// else an empty file (contents and executables come from writeFile).
func tree(t *testing.T, root string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		var err error
		switch name, target, link := strings.Cut(p, " -> "); {
		case link:
			if err = os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755); err == nil {
				err = os.Symlink(target, filepath.Join(root, name))
			}
		case strings.HasSuffix(p, "/"):
			err = os.MkdirAll(filepath.Join(root, p), 0o755)
		default:
			writeFile(t, filepath.Join(root, p), "", 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// wheel writes the dist-info of a wheel into the site-packages dir sp: its METADATA and a RECORD that
// lists files.
func wheel(t *testing.T, sp, name, version string, files ...string) {
	t.Helper()
	dist := filepath.Join(sp, strings.ReplaceAll(name, "-", "_")+"-"+version+".dist-info")
	writeFile(t, filepath.Join(dist, "METADATA"), "Metadata-Version: 2.1\nName: "+name+"\nVersion: "+version+"\n", 0o644)
	var rec strings.Builder
	for _, f := range files {
		rec.WriteString(f + ",sha256=AAAA,1\n")
	}
	writeFile(t, filepath.Join(dist, "RECORD"), rec.String(), 0o644)
}

// fakeLdconfig writes an ldconfig whose cache (-p) maps each soname to its path.
func fakeLdconfig(t *testing.T, path string, entries ...[2]string) {
	t.Helper()
	s := "#!/bin/sh\necho '2 libs found in cache'\n"
	for _, e := range entries {
		s += "printf '\\t%s (libc6,x86-64) => %s\\n' '" + e[0] + "' '" + e[1] + "'\n"
	}
	writeFile(t, path, s, 0o755)
}

// bashEnv is the whole environment a script runs with: nothing comes from this machine's environment.
func bashEnv(root, tools string, vars map[string]string) []string {
	env := []string{
		"PATH=" + tools, "HOME=" + filepath.Join(root, "home"),
		"RESNET_GPU_OPT_ROOTS=" + filepath.Join(root, "opt"),
		"RESNET_GPU_SYSTEM_DIRS=", "RESNET_GPU_LDCONFIG=",
	}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

type envLib struct {
	Found       bool     `json:"found"`
	Soname      string   `json:"soname"`
	Path        string   `json:"path"`
	Version     string   `json:"version"`
	Package     string   `json:"package"`
	OtherCopies []string `json:"other_copies"`
}

type envReport struct {
	OK            bool              `json:"ok"`
	Missing       []string          `json:"missing"`
	Warnings      []string          `json:"warnings"`
	SetFrom       string            `json:"set_from"`
	SetCUDAMajor  *int              `json:"set_cuda_major"`
	LDLibraryPath string            `json:"ld_library_path"`
	TorchPython   string            `json:"torch_python"`
	TorchVersion  string            `json:"torch_version"`
	Libraries     map[string]envLib `json:"libraries"`
	Searched      []string          `json:"searched"`
}

// runGPUEnv runs gpu-env.sh --json in env and returns its exit code, stdout, stderr and report.
func runGPUEnv(t *testing.T, root string, env []string) (int, string, string, envReport) {
	t.Helper()
	report := filepath.Join(root, "env.json")
	cmd := exec.Command("bash", "gpu-env.sh", "--json", report)
	cmd.Env = env
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	code := 0
	if err := cmd.Run(); err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatal(err)
		}
		code = ee.ExitCode()
	}
	var rep envReport
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("no JSON report: %v\nstderr:\n%s", err, errOut.String())
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, data)
	}
	return code, out.String(), errOut.String(), rep
}

// lib is the expected report of a library: found at path (when not empty) with version and package.
func lib(soname, path, version, pkg string, others ...string) envLib {
	return envLib{Found: path != "", Soname: soname, Path: path, Version: version, Package: pkg, OtherCopies: append([]string{}, others...)}
}

// The cases build fake machines under root ($R in the expectations) and check which copy of every
// library gpu-env.sh picks, what it reports, and what it exports.
func TestGPUEnvSearch(t *testing.T) {
	tools := toolsDir(t)
	const sp312 = "lib/python3.12/site-packages"
	cuda13 := func(t *testing.T, sp string) {
		tree(t, sp, "nvidia/cudnn/lib/libcudnn.so.9", "nvidia/cudnn/lib/libcudnn_graph.so.9",
			"nvidia/cu13/lib/libcublas.so.13", "nvidia/cu13/lib/libcublasLt.so.13", "nvidia/cu13/lib/libnvrtc.so.13")
		wheel(t, sp, "nvidia-cudnn-cu13", "9.13.0.50", "nvidia/cudnn/lib/libcudnn.so.9", "nvidia/cudnn/lib/libcudnn_graph.so.9")
		wheel(t, sp, "nvidia-cublas", "13.1.0.3", "nvidia/cu13/lib/libcublas.so.13", "nvidia/cu13/lib/libcublasLt.so.13")
	}
	for _, c := range []struct {
		name  string
		build func(t *testing.T, root string) map[string]string // returns extra environment
		code  int
		want  envReport
		// stdout is the export lines; stderr lines that must appear.
		stdout string
		stderr []string
	}{
		{
			// The GPU machine's case: PyTorch in a venv under /opt that is not activated, with a python
			// that cannot run here; zlib and the driver where the loader finds them.
			name: "unactivated venv under /opt",
			build: func(t *testing.T, root string) map[string]string {
				venv := filepath.Join(root, "opt/torchenv/.venv")
				sp := filepath.Join(venv, sp312)
				tree(t, venv, "pyvenv.cfg")
				writeFile(t, filepath.Join(venv, "bin/python3"), "#!/bin/sh\nexit 1\n", 0o755)
				cuda13(t, sp)
				tree(t, sp, "nvidia/nccl/lib/libnccl.so.2", "torch/__init__.py", "torchvision/__init__.py")
				wheel(t, sp, "torch", "2.9.0")
				// The same venv again through a link: one place, not a second copy of each library.
				tree(t, root, "opt/zz-link -> torchenv")
				// An older cuDNN in the system, which must lose to the consistent set.
				tree(t, root, "usr/local/cuda-12.4/lib64/libcudnn.so.9.1.0",
					"usr/local/cuda-12.4/lib64/libcudnn.so.9 -> libcudnn.so.9.1.0",
					"usr/lib/libz.so.1.3", "usr/lib/libz.so.1 -> libz.so.1.3",
					"usr/lib/libcuda.so.580.65.06", "usr/lib/libcuda.so.1 -> libcuda.so.580.65.06")
				fakeLdconfig(t, filepath.Join(root, "ldconfig"),
					[2]string{"libz.so.1", filepath.Join(root, "usr/lib/libz.so.1")},
					[2]string{"libcuda.so.1", filepath.Join(root, "usr/lib/libcuda.so.1")})
				return map[string]string{
					"RESNET_GPU_LDCONFIG":    filepath.Join(root, "ldconfig"),
					"RESNET_GPU_SYSTEM_DIRS": filepath.Join(root, "usr/local/cuda-*/lib64"),
				}
			},
			want: envReport{
				OK: true, SetFrom: "$R/opt/torchenv/.venv/" + sp312, SetCUDAMajor: ptr(13),
				LDLibraryPath: "$R/opt/torchenv/.venv/" + sp312 + "/nvidia/cudnn/lib:$R/opt/torchenv/.venv/" + sp312 +
					"/nvidia/cu13/lib:$R/opt/torchenv/.venv/" + sp312 + "/nvidia/nccl/lib",
				TorchPython: "$R/opt/torchenv/.venv/bin/python3", TorchVersion: "2.9.0",
				Libraries: map[string]envLib{
					"cudnn": lib("libcudnn.so.9", "$SP/nvidia/cudnn/lib/libcudnn.so.9", "9.13.0.50", "nvidia-cudnn-cu13",
						"$R/usr/local/cuda-12.4/lib64/libcudnn.so.9"),
					"cublas":   lib("libcublas.so.13", "$SP/nvidia/cu13/lib/libcublas.so.13", "13.1.0.3", "nvidia-cublas"),
					"cublaslt": lib("libcublasLt.so.13", "$SP/nvidia/cu13/lib/libcublasLt.so.13", "13.1.0.3", "nvidia-cublas"),
					"nvrtc":    lib("libnvrtc.so.13", "$SP/nvidia/cu13/lib/libnvrtc.so.13", "13", ""),
					"nccl":     lib("libnccl.so.2", "$SP/nvidia/nccl/lib/libnccl.so.2", "2", ""),
					"libz":     lib("libz.so.1", "$R/usr/lib/libz.so.1", "1.3", ""),
					"driver":   lib("libcuda.so.1", "$R/usr/lib/libcuda.so.1", "580.65.06", ""),
				},
			},
			stdout: "export LD_LIBRARY_PATH=$R/opt/torchenv/.venv/" + sp312 + "/nvidia/cudnn/lib:$R/opt/torchenv/.venv/" + sp312 +
				"/nvidia/cu13/lib:$R/opt/torchenv/.venv/" + sp312 + "/nvidia/nccl/lib\"${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}\"\n" +
				"export RESNET_TORCH_PYTHON=$R/opt/torchenv/.venv/bin/python3\n",
			stderr: []string{
				"gpu-env: cuDNN     $SP/nvidia/cudnn/lib/libcudnn.so.9 (nvidia-cudnn-cu13 9.13.0.50; 1 other copy)",
				"gpu-env: set:      cuDNN, cuBLAS and cuBLASLt (CUDA 13) all from $SP ($R/opt/*/.venv)",
				"gpu-env: zlib      $R/usr/lib/libz.so.1 (1.3)",
				"gpu-env: driver    $R/usr/lib/libcuda.so.1 (580.65.06)",
				"gpu-env: torch:    $R/opt/torchenv/.venv/bin/python3 (torch 2.9.0)",
			},
		},
		{
			// A CUDA 13 set wins over a complete CUDA 12 set found earlier (a python on PATH) and over an
			// activated venv that has cuDNN alone; torch comes from the first place that has it.
			name: "consistent CUDA 13 set preferred",
			build: func(t *testing.T, root string) map[string]string {
				active := filepath.Join(root, "active")
				tree(t, active, "pyvenv.cfg", sp312+"/nvidia/cudnn/lib/libcudnn.so.9")
				cu12 := filepath.Join(root, "py12/site-packages")
				tree(t, cu12, "nvidia/cudnn/lib/libcudnn.so.9", "nvidia/cublas/lib/libcublas.so.12",
					"nvidia/cublas/lib/libcublasLt.so.12", "torch/__init__.py")
				wheel(t, cu12, "nvidia-cudnn-cu12", "9.1.0.70", "nvidia/cudnn/lib/libcudnn.so.9")
				// This python answers the site query with the CUDA 12 site-packages.
				writeFile(t, filepath.Join(root, "bin/python3"), "#!/bin/sh\ncat >/dev/null\necho "+cu12+"\n", 0o755)
				cuda13(t, filepath.Join(root, "opt/other/venv", sp312))
				tree(t, root, "opt/other/venv/pyvenv.cfg", "usr/lib/libz.so.1", "usr/lib/libcuda.so.1")
				return map[string]string{
					"VIRTUAL_ENV":            active,
					"PATH":                   filepath.Join(root, "bin"),
					"RESNET_GPU_SYSTEM_DIRS": filepath.Join(root, "usr/lib"),
				}
			},
			want: envReport{
				OK: true, SetFrom: "$R/opt/other/venv/" + sp312, SetCUDAMajor: ptr(13),
				LDLibraryPath: "$R/opt/other/venv/" + sp312 + "/nvidia/cudnn/lib:$R/opt/other/venv/" + sp312 + "/nvidia/cu13/lib:$R/usr/lib",
				TorchPython:   "$R/bin/python3",
				Warnings: []string{
					"torchvision is not installed next to torch in $R/py12/site-packages; bench_pytorch.py needs it for resnet18..152",
				},
				Libraries: map[string]envLib{
					"cudnn": lib("libcudnn.so.9", "$R/opt/other/venv/"+sp312+"/nvidia/cudnn/lib/libcudnn.so.9", "9.13.0.50", "nvidia-cudnn-cu13",
						"$R/active/"+sp312+"/nvidia/cudnn/lib/libcudnn.so.9", "$R/py12/site-packages/nvidia/cudnn/lib/libcudnn.so.9"),
					"cublas": lib("libcublas.so.13", "$R/opt/other/venv/"+sp312+"/nvidia/cu13/lib/libcublas.so.13", "13.1.0.3", "nvidia-cublas"),
					"cublaslt": lib("libcublasLt.so.13", "$R/opt/other/venv/"+sp312+"/nvidia/cu13/lib/libcublasLt.so.13", "13.1.0.3",
						"nvidia-cublas"),
					"nvrtc":  lib("libnvrtc.so.13", "$R/opt/other/venv/"+sp312+"/nvidia/cu13/lib/libnvrtc.so.13", "13", ""),
					"nccl":   lib("libnccl.so.2", "", "", ""),
					"libz":   lib("libz.so.1", "$R/usr/lib/libz.so.1", "1", ""),
					"driver": lib("libcuda.so.1", "$R/usr/lib/libcuda.so.1", "1", ""),
				},
			},
			stdout: "export LD_LIBRARY_PATH=$R/opt/other/venv/" + sp312 + "/nvidia/cudnn/lib:$R/opt/other/venv/" + sp312 +
				"/nvidia/cu13/lib:$R/usr/lib\"${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}\"\nexport RESNET_TORCH_PYTHON=$R/bin/python3\n",
		},
		{
			// No place has the whole set: each library is the first copy in search order (RESNET_GPU_LIB_DIRS,
			// then a conda prefix's lib/, then ~/.local), with a warning; CUDA 12 cuBLAS is taken when
			// there is no other.
			name: "first copies when no place has the set",
			build: func(t *testing.T, root string) map[string]string {
				tree(t, root, "extra/libcudnn.so.9.1.0", "extra/libcudnn.so.9 -> libcudnn.so.9.1.0",
					"conda/conda-meta/", "conda/lib/libcublas.so.12", "conda/lib/libz.so.1",
					"home/.local/lib/python3.11/site-packages/nvidia/cublas/lib/libcublasLt.so.13",
					"sys/libcuda.so.1")
				return map[string]string{
					"RESNET_GPU_LIB_DIRS":    filepath.Join(root, "extra"),
					"CONDA_PREFIX":           filepath.Join(root, "conda"),
					"RESNET_GPU_SYSTEM_DIRS": filepath.Join(root, "sys"),
				}
			},
			want: envReport{
				OK:            true,
				LDLibraryPath: "$R/extra:$R/conda/lib:$R/home/.local/lib/python3.11/site-packages/nvidia/cublas/lib:$R/sys",
				Warnings: []string{
					"cuBLAS: found libcublas.so.12, not libcublas.so.13, which the CUDA build is compiled against",
					"no one place holds cuDNN, cuBLAS and cuBLASLt together; each is the first copy found, which may not match",
					"libnvrtc.so.13 not found; cuDNN's runtime-compiled engines will be unavailable",
					"no python with torch found; the PyTorch peer benchmark (scripts/bench_pytorch.py) cannot run: set RESNET_TORCH_PYTHON",
				},
				Libraries: map[string]envLib{
					"cudnn":    lib("libcudnn.so.9", "$R/extra/libcudnn.so.9", "9.1.0", ""),
					"cublas":   lib("libcublas.so.12", "$R/conda/lib/libcublas.so.12", "12", ""),
					"cublaslt": lib("libcublasLt.so.13", "$R/home/.local/lib/python3.11/site-packages/nvidia/cublas/lib/libcublasLt.so.13", "13", ""),
					"nvrtc":    lib("libnvrtc.so.13", "", "", ""),
					"nccl":     lib("libnccl.so.2", "", "", ""),
					"libz":     lib("libz.so.1", "$R/conda/lib/libz.so.1", "1", ""),
					"driver":   lib("libcuda.so.1", "$R/sys/libcuda.so.1", "1", ""),
				},
			},
			stdout: "export LD_LIBRARY_PATH=$R/extra:$R/conda/lib:$R/home/.local/lib/python3.11/site-packages/nvidia/cublas/lib:$R/sys" +
				"\"${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}\"\n",
		},
		{
			// Nothing anywhere: exit 1, no export lines, and each missing library named, zlib with what to do.
			name:  "nothing found",
			build: func(t *testing.T, root string) map[string]string { return nil },
			code:  1,
			want: envReport{
				Missing: []string{
					"cuDNN (libcudnn.so.9)", "cuBLAS (libcublas.so.13)", "cuBLASLt (libcublasLt.so.13)",
					"zlib (libz.so.1): cuDNN 9 cannot load its engines without it; install zlib (apt-get install zlib1g) or put a directory that holds libz.so.1 in RESNET_GPU_LIB_DIRS",
					"the NVIDIA driver's libcuda.so.1 (is this a GPU machine? try nvidia-smi)",
				},
				Warnings: []string{
					"libnvrtc.so.13 not found; cuDNN's runtime-compiled engines will be unavailable",
					"no python with torch found; the PyTorch peer benchmark (scripts/bench_pytorch.py) cannot run: set RESNET_TORCH_PYTHON",
				},
				Libraries: map[string]envLib{
					"cudnn": lib("libcudnn.so.9", "", "", ""), "cublas": lib("libcublas.so.13", "", "", ""),
					"cublaslt": lib("libcublasLt.so.13", "", "", ""), "nvrtc": lib("libnvrtc.so.13", "", "", ""),
					"nccl": lib("libnccl.so.2", "", "", ""), "libz": lib("libz.so.1", "", "", ""),
					"driver": lib("libcuda.so.1", "", "", ""),
				},
			},
			stderr: []string{
				"gpu-env: error: not found:",
				"gpu-env:   cuDNN (libcudnn.so.9)",
				"gpu-env:   zlib (libz.so.1): cuDNN 9 cannot load its engines without it; install zlib (apt-get install zlib1g) or put a directory that holds libz.so.1 in RESNET_GPU_LIB_DIRS",
				"gpu-env: set RESNET_GPU_LIB_DIRS=dir1:dir2 to the directories that hold them, or RESNET_PYTHON to the python whose packages have them",
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			vars := c.build(t, root)
			if p, ok := vars["PATH"]; ok {
				vars["PATH"] = tools + ":" + p
			}
			code, stdout, stderr, got := runGPUEnv(t, root, bashEnv(root, tools, vars))
			expand := func(s string) string {
				s = strings.ReplaceAll(s, "$SP", "$R/opt/torchenv/.venv/"+sp312)
				return strings.ReplaceAll(s, "$R", root)
			}
			want := c.want
			want.SetFrom, want.LDLibraryPath, want.TorchPython = expand(want.SetFrom), expand(want.LDLibraryPath), expand(want.TorchPython)
			want.Warnings = expandAll(want.Warnings, expand)
			want.Libraries = map[string]envLib{}
			for k, l := range c.want.Libraries {
				l.Path, l.OtherCopies = expand(l.Path), expandAll(l.OtherCopies, expand)
				want.Libraries[k] = l
			}
			got.Searched = nil // checked by the picks
			if want.Missing == nil {
				want.Missing = []string{}
			}
			if want.Warnings == nil {
				want.Warnings = []string{}
			}
			if code != c.code {
				t.Errorf("exit code %d, want %d", code, c.code)
			}
			if !reflect.DeepEqual(got, want) {
				gj, _ := json.MarshalIndent(got, "", "  ")
				wj, _ := json.MarshalIndent(want, "", "  ")
				t.Errorf("report:\n%s\nwant:\n%s", gj, wj)
			}
			if stdout != expand(c.stdout) {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout, expand(c.stdout))
			}
			for _, line := range c.stderr {
				if !slices.Contains(strings.Split(stderr, "\n"), expand(line)) {
					t.Errorf("stderr lacks the line %q:\n%s", expand(line), stderr)
				}
			}
		})
	}
}

func expandAll(s []string, expand func(string) string) []string {
	if s == nil {
		return nil
	}
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = expand(v)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// Sourcing exports the variables without changing the caller's shell options, under set -u; when a
// library is missing it returns 1 and exports nothing.
func TestGPUEnvSourced(t *testing.T) {
	tools := toolsDir(t)
	root := t.TempDir()
	sp := filepath.Join(root, "opt/env/.venv/lib/python3.11/site-packages")
	tree(t, sp, "nvidia/cudnn/lib/libcudnn.so.9", "nvidia/cu13/lib/libcublas.so.13", "nvidia/cu13/lib/libcublasLt.so.13",
		"torch/__init__.py")
	tree(t, root, "opt/env/.venv/pyvenv.cfg", "sys/libz.so.1", "sys/libcuda.so.1")
	writeFile(t, filepath.Join(root, "opt/env/.venv/bin/python3"), "#!/bin/sh\nexit 1\n", 0o755)
	script, err := filepath.Abs("gpu-env.sh")
	if err != nil {
		t.Fatal(err)
	}
	const caller = `set -u; LD_LIBRARY_PATH=/old; before=$-; . "$1"; rc=$?
echo "rc=$rc opts=$([[ $- == "$before" ]] && echo same || echo changed:$-)"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"; echo "RESNET_TORCH_PYTHON=${RESNET_TORCH_PYTHON-unset}"`
	for _, c := range []struct {
		system string
		want   string
	}{
		{filepath.Join(root, "sys"), "rc=0 opts=same\nLD_LIBRARY_PATH=" + sp + "/nvidia/cudnn/lib:" + sp + "/nvidia/cu13/lib:" +
			filepath.Join(root, "sys") + ":/old\nRESNET_TORCH_PYTHON=" + filepath.Join(root, "opt/env/.venv/bin/python3") + "\n"},
		{filepath.Join(root, "none"), "rc=1 opts=same\nLD_LIBRARY_PATH=/old\nRESNET_TORCH_PYTHON=unset\n"},
	} {
		cmd := exec.Command("bash", "-c", caller, "caller", script)
		cmd.Env = bashEnv(root, tools, map[string]string{"RESNET_GPU_SYSTEM_DIRS": c.system})
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if string(out) != c.want {
			t.Errorf("system dirs %s: got\n%s\nwant\n%s", c.system, out, c.want)
		}
	}
}
