package cuda

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"resnet/internal/backend"
)

var kernelDecl = regexp.MustCompile(`extern "C" __global__ void(?:\s+__launch_bounds__\([^)]*\))?\s+(\w+)\(([^)]*)\)`)

// paramLetter maps one C parameter declaration to its kernelTable letter.
func paramLetter(decl string) string {
	d := strings.Join(strings.Fields(decl), " ")
	switch {
	case strings.Contains(d, "*"):
		return "p"
	case strings.HasPrefix(d, "long long ") || strings.HasPrefix(d, "const long long "):
		return "l"
	case strings.HasPrefix(d, "int ") || strings.HasPrefix(d, "const int "):
		return "i"
	case strings.HasPrefix(d, "float ") || strings.HasPrefix(d, "const float "):
		return "f"
	}
	return "?(" + d + ")"
}

// kernelDir finds kernels/: from the package directory (go test) or the repository root (a test binary
// run there). A binary run elsewhere has no sources to check and skips.
func kernelDir(t *testing.T) string {
	t.Helper()
	for _, dir := range []string{"../../kernels", "kernels"} {
		if _, err := os.Stat(filepath.Join(dir, "all.cu")); err == nil {
			return dir
		}
	}
	t.Skip("kernels/ not found: the test binary runs outside the repository")
	return ""
}

// kernelMacro matches a kernel written as a macro of (name, T, L, ...), which RN_ACT_FORMATS or
// RN_ACT_DTYPES instantiates once per activation format; instantiation matches one such use.
var (
	kernelMacro   = regexp.MustCompile(`^#define (\w+)\(name, T, L[^)]*\)\s*(.*)$`)
	instantiation = regexp.MustCompile(`(?m)^(RN_ACT_FORMATS|RN_ACT_DTYPES)\((\w+),\s*(\w+)`)
	formatEntry   = regexp.MustCompile(`M\(name(?:##(\w+))?, ([\w:]+), rn::(\w+)`)
)

// logicalLines joins the lines continued by a backslash, as the preprocessor does.
func logicalLines(src string) []string {
	return strings.Split(strings.ReplaceAll(src, "\\\n", " "), "\n")
}

// actFormatSuffixes parses the suffixes that RN_ACT_FORMATS and RN_ACT_DTYPES (kernels/common.cuh) give
// a kernel's formats, and checks that kernels.go derives the same name for each format.
func actFormatSuffixes(t *testing.T) map[string][]string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(kernelDir(t), "common.cuh"))
	if err != nil {
		t.Fatal(err)
	}
	dtypes := map[string]backend.DType{"float": backend.F32, "rn::bf16": backend.BF16, "rn::f16": backend.F16}
	layouts := map[string]backend.Layout{"NCHW": backend.NCHW, "NHWC": backend.NHWC}
	out := map[string][]string{}
	for _, line := range logicalLines(string(src)) {
		for _, macro := range []string{"RN_ACT_FORMATS", "RN_ACT_DTYPES"} {
			if !strings.HasPrefix(line, "#define "+macro+"(") {
				continue
			}
			for _, m := range formatEntry.FindAllStringSubmatch(line, -1) {
				dt, okT := dtypes[m[2]]
				layout, okL := layouts[m[3]]
				if !okT || !okL {
					t.Fatalf("common.cuh: %s instantiates an unknown format %s %s", macro, m[2], m[3])
				}
				if want := formatSuffix(dt, layout, macro == "RN_ACT_FORMATS"); m[1] != want {
					t.Errorf("common.cuh: %s names the %v %v kernels with suffix %q, kernels.go with %q", macro, dt, layout, m[1], want)
				}
				out[macro] = append(out[macro], m[1])
			}
		}
	}
	if len(out["RN_ACT_FORMATS"]) != numFormats || len(out["RN_ACT_DTYPES"]) != numDTypes {
		t.Fatalf("common.cuh: RN_ACT_FORMATS has %d formats, RN_ACT_DTYPES %d; kernels.go knows %d and %d",
			len(out["RN_ACT_FORMATS"]), len(out["RN_ACT_DTYPES"]), numFormats, numDTypes)
	}
	return out
}

// sourceKernels parses every extern "C" kernel of kernels/*.cu into name -> signature letters, expanding
// the kernels written as macros into one kernel per format.
func sourceKernels(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(kernelDir(t), "*.cu"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no kernels/*.cu found (err %v)", err)
	}
	suffixes := actFormatSuffixes(t)
	out := map[string]string{}
	add := func(name, params string) {
		var sig strings.Builder
		for _, p := range strings.Split(params, ",") {
			sig.WriteString(paramLetter(p))
		}
		if _, dup := out[name]; dup {
			t.Errorf("kernel %s is defined twice", name)
		}
		out[name] = sig.String()
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		macros := map[string]string{} // macro name -> the kernel's parameters
		var plain strings.Builder
		for _, line := range logicalLines(string(src)) {
			if m := kernelMacro.FindStringSubmatch(line); m != nil {
				if d := kernelDecl.FindStringSubmatch(m[2]); d != nil && d[1] == "name" {
					macros[m[1]] = d[2]
				}
				continue
			}
			plain.WriteString(line + "\n")
		}
		for _, m := range kernelDecl.FindAllStringSubmatch(plain.String(), -1) {
			add(m[1], m[2])
		}
		for _, m := range instantiation.FindAllStringSubmatch(plain.String(), -1) {
			params, ok := macros[m[2]]
			if !ok {
				t.Errorf("%s: %s(%s, %s) uses %s, which defines no kernel of (name, T, L, ...)", f, m[1], m[2], m[3], m[2])
				continue
			}
			for _, suffix := range suffixes[m[1]] {
				add(m[3]+suffix, params)
			}
		}
	}
	return out
}

func TestKernelTableMatchesSources(t *testing.T) {
	src := sourceKernels(t)
	seen := map[string]bool{}
	for id, k := range kernelTable {
		if k.name == "" {
			t.Errorf("kernel id %d has no table entry", id)
			continue
		}
		if len(k.sig) > maxKernelArgs {
			t.Errorf("%s takes %d arguments, more than maxKernelArgs (%d)", k.name, len(k.sig), maxKernelArgs)
		}
		seen[k.name] = true
		got, ok := src[k.name]
		if !ok {
			t.Errorf("kernel %s is in the table but not in kernels/*.cu", k.name)
			continue
		}
		if got != k.sig {
			t.Errorf("kernel %s: table signature %q, source %q", k.name, k.sig, got)
		}
	}
	for name := range src {
		if !seen[name] {
			t.Errorf("kernel %s of kernels/*.cu is missing from kernelTable", name)
		}
	}
}

// The launchers size the reductions' grids by the channel tiles the kernels read NHWC in (channelTiles),
// whose width comes from the sector size.
func TestSectorBytesMatchesSources(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(kernelDir(t), "common.cuh"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^#define RN_SECTOR (\d+)$`).FindSubmatch(src)
	if m == nil {
		t.Fatal("common.cuh: no #define RN_SECTOR")
	}
	if got := string(m[1]); got != strconv.Itoa(sectorBytes) {
		t.Errorf("common.cuh: RN_SECTOR is %s, kernels.go's sectorBytes %d", got, sectorBytes)
	}
}

func TestAllCUIncludesEveryFamily(t *testing.T) {
	dir := kernelDir(t)
	all, err := os.ReadFile(filepath.Join(dir, "all.cu"))
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.cu"))
	for _, f := range files {
		base := filepath.Base(f)
		if base == "all.cu" {
			continue
		}
		if !strings.Contains(string(all), `#include "`+base+`"`) {
			t.Errorf("kernels/all.cu does not include %s, so its kernels are not in the fatbin", base)
		}
	}
}

func TestFusedAndUnfusedListsPartitionBatchNormAndSGD(t *testing.T) {
	names := map[string]bool{}
	for _, k := range kernelTable {
		names[k.name] = true
	}
	for _, n := range append(slices.Clone(FusedKernels), UnfusedKernels...) {
		if !names[n] {
			t.Errorf("%s is listed as fused or unfused but is not a kernel", n)
		}
	}
	for _, n := range FusedKernels {
		if slices.Contains(UnfusedKernels, n) {
			t.Errorf("%s is listed as both fused and unfused", n)
		}
	}
}

// fastMathFlags are the nvcc flags that change results: --use_fast_math implies the other three.
var fastMathFlags = []string{"--use_fast_math", "-use_fast_math", "-ftz=true", "-prec-div=false", "-prec-sqrt=false"}

// approximateMath matches calls of the CUDA intrinsics that trade accuracy for speed (the ones
// --use_fast_math substitutes for the standard functions, and the approximate reciprocal square root).
var approximateMath = regexp.MustCompile(`\b(__expf|__exp10f|__logf|__log2f|__log10f|__powf|__sinf|__cosf|__tanf|__sincosf|__fdividef|rsqrtf)\s*\(`)

// The kernels' comments promise results that are exact, identical in the fused and unfused paths and the
// same from run to run: nothing in the build or the sources may approximate (see
// docs/decisions/0005-cuda-determinism.md).
func TestKernelsBuildWithoutFastMath(t *testing.T) {
	dir := kernelDir(t)
	mk, err := os.ReadFile(filepath.Join(dir, "..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	flags := ""
	for _, line := range strings.Split(string(mk), "\n") {
		if strings.HasPrefix(line, "NVCCFLAGS") {
			flags = line
		}
	}
	if flags == "" {
		t.Fatal("Makefile sets no NVCCFLAGS")
	}
	for _, f := range fastMathFlags {
		if slices.Contains(strings.Fields(flags), f) {
			t.Errorf("Makefile: %s has %s, which changes the kernels' results", flags, f)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.cu*"))
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(src), "\n") {
			code, _, _ := strings.Cut(line, "//")
			if m := approximateMath.FindString(code); m != "" {
				t.Errorf("%s:%d calls %s, an approximate intrinsic; use the correctly rounded one (__fdiv_rn, __fsqrt_rn, double exp)", f, i+1, strings.TrimRight(m, "( "))
			}
		}
	}
}
