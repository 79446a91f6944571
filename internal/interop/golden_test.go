package interop

import (
	"encoding/binary"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"resnet/internal/cpu"
	"resnet/internal/model"
	"resnet/internal/safetensors"
)

// The golden files in testdata are written by scripts/torchvision_golden.py from PyTorch in float64:
// torchvision's resnet18, resnet50, resnext50_32x4d and densenet121, timm's resnetv2_50, seresnet50,
// seresnext50_32x4d and inception_resnet_v2, and the paper's cifar_resnet20, each with fixed weights and one
// fixed batch, by the versions scripts/setup-torch.sh pins (goldenTorch). These tests import the same
// weights into a CPU net, run one training-mode forward and backward and an eval-mode forward, and match
// every stored tensor. See the script for what is stored.

const (
	goldenSeed           = 20151210
	goldenBatchesTracked = 7
)

// goldenTorch are the versions of PyTorch and torchvision that wrote the golden files (metadata torch and
// torchvision, before any local version label such as +cu132).
var goldenTorch = map[string]string{"torch": "2.15.0", "torchvision": "0.29.2"}

// fnv1a is the 64-bit FNV-1a hash of s.
func fnv1a(s string) uint64 {
	h := uint64(0xcbf29ce484222325)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 0x100000001b3
	}
	return h
}

// goldenUniform is the script's generator: n values in [0, 1) from SplitMix64 keyed by key.
func goldenUniform(key uint64, n int) []float64 {
	u := make([]float64, n)
	for i := range u {
		z := key + uint64(i+1)*0x9e3779b97f4a7c15
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		z ^= z >> 31
		u[i] = float64(z>>11) * 0x1p-53
	}
	return u
}

func goldenKey(label, name string) uint64 { return fnv1a(label+name) ^ goldenSeed }

// goldenRange is the script's weight_range, by parameter kind; lastBN is the BN closing a residual
// branch (bn2 of a basic block, bn3 of a bottleneck, norm3 of a pre-activation bottleneck), whose gamma is
// damped. The BNs of timm's ConvNormAct layers (name.bn, Inception-ResNet-v2's) keep beta at least three
// times gamma, and the convolution closing an Inception-ResNet unit (unit.conv2d) is damped to a fifth. A
// DenseNet's BNs after the stem keep their ReLU's kink below most of its inputs.
func goldenRange(p *model.Param, lastBN string) (lo, hi float64) {
	unit := strings.HasPrefix(p.Name, "layer") || strings.HasPrefix(p.Name, "stages")
	dense := strings.HasPrefix(p.Name, "features.") && !strings.HasPrefix(p.Name, "features.norm0.")
	switch {
	case p.Kind == model.BNWeight && unit && strings.HasSuffix(p.Name, "."+lastBN+".weight"),
		p.Kind == model.BNWeight && strings.HasSuffix(p.Name, ".bn.weight"):
		return 0.1, 0.3
	case p.Kind == model.BNBias && strings.HasSuffix(p.Name, ".bn.bias"):
		return 0.9, 1.5
	case dense && p.Kind == model.BNWeight:
		return 0.5, 1.0
	case dense && p.Kind == model.BNBias:
		return 1.0, 2.0
	}
	switch p.Kind {
	case model.ConvWeight:
		b := math.Sqrt(3 / float64(p.Shape[1]*p.Shape[2]*p.Shape[3]))
		if strings.HasSuffix(p.Name, ".conv2d.weight") {
			b *= 0.2
		}
		return -b, b
	case model.BNWeight:
		return 0.5, 1.5
	case model.BNBias, model.BNRunningMean:
		return -0.3, 0.3
	case model.BNRunningVar:
		return 0.5, 2.0
	case model.FCWeight:
		b := 1 / math.Sqrt(float64(p.Shape[1]))
		return -b, b
	}
	return -0.1, 0.1 // FCBias, ConvBias
}

// goldenState builds the state_dict the script loads into PyTorch, as PyTorch would save it: F32 tensors
// and an I64 num_batches_tracked per BN.
func goldenState(net *model.Net) *safetensors.File {
	f := &safetensors.File{}
	lastBN := "bn2"
	if net.Spec.Block == model.Bottleneck {
		lastBN = "bn3"
		if net.Spec.PreAct {
			lastBN = "norm3"
		}
	}
	for _, p := range net.Params {
		lo, hi := goldenRange(p, lastBN)
		u := goldenUniform(goldenKey("", p.Name), p.Shape.Numel())
		v := make([]float32, len(u))
		for i, x := range u {
			v[i] = float32(lo + float64((hi-lo)*x)) // the conversion keeps the product rounded, as numpy does
		}
		f.Tensors = append(f.Tensors, safetensors.F32(p.Name, p.Shape, v))
		if p.Kind == model.BNRunningVar {
			f.Tensors = append(f.Tensors, safetensors.I64(batchesTrackedName(p), nil, []int64{goldenBatchesTracked}))
		}
	}
	return f
}

// tolerance bounds |got - ref| by abs*scale + rel*|ref|, where scale is the RMS of the reference tensor
// (so abs is relative to the tensor's own magnitude: gradients of different layers differ by orders).
type tolerance struct{ abs, rel float64 }

// Tolerances per tensor group. The Go net computes in float32 (with float64 BN statistics), the
// reference in float64; the largest errors seen are under a third of these, inception_resnet_v2's
// gradients under 0.7 (the test logs them).
var goldenTol = map[string]tolerance{
	"train.logits":  {abs: 2e-5, rel: 2e-5},
	"train.loss":    {abs: 0, rel: 5e-7},
	"eval.logits":   {abs: 1e-5, rel: 1e-5},
	"running_mean":  {abs: 5e-6, rel: 5e-6},
	"running_var":   {abs: 5e-6, rel: 5e-6},
	"grad.conv":     {abs: 2e-4, rel: 2e-4},
	"grad.bn":       {abs: 2e-4, rel: 2e-4},
	"grad.fc":       {abs: 5e-5, rel: 5e-5},
	"weights (sum)": {abs: 0, rel: 1e-12},
}

// worst tracks the largest error of a tensor group, as a fraction of its tolerance and in absolute terms.
type worst struct {
	ratio, abs float64
	where      string
}

func (w *worst) add(ratio, abs float64, where string) {
	if ratio > w.ratio {
		w.ratio, w.where = ratio, where
	}
	w.abs = max(w.abs, abs)
}

type goldenCase struct {
	t      *testing.T
	arch   string
	g      *safetensors.File
	worsts map[string]*worst
}

func (c *goldenCase) tensor(name string) safetensors.Tensor {
	c.t.Helper()
	t, ok := c.g.Get(name)
	if !ok {
		c.t.Fatalf("%s golden file has no %s", c.arch, name)
	}
	return t
}

func (c *goldenCase) float64s(name string) []float64 {
	c.t.Helper()
	t := c.tensor(name)
	var v []float64
	switch t.DType {
	case safetensors.Float64:
		for i := 0; i+8 <= len(t.Data); i += 8 {
			v = append(v, math.Float64frombits(binary.LittleEndian.Uint64(t.Data[i:])))
		}
	default:
		f, err := Float32s(t)
		if err != nil {
			c.t.Fatalf("%s: %v", name, err)
		}
		for _, x := range f {
			v = append(v, float64(x))
		}
	}
	return v
}

func (c *goldenCase) int64s(name string) []int64 {
	c.t.Helper()
	v, err := c.tensor(name).Int64s()
	if err != nil {
		c.t.Fatalf("%s: %v", name, err)
	}
	return v
}

func rms(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s / float64(max(len(v), 1)))
}

// match compares got with ref element by element under the group's tolerance; scale 0 takes ref's RMS.
func (c *goldenCase) match(group, name string, got []float32, ref []float64, scale float64) {
	c.matchZeros(group, name, got, ref, scale, 0)
}

// matchZeros is match where an element of ref below structuralZero times zeroScale, zero but for rounding,
// is measured on zeroScale instead of scale (0: none is).
func (c *goldenCase) matchZeros(group, name string, got []float32, ref []float64, scale, zeroScale float64) {
	c.t.Helper()
	if len(got) != len(ref) {
		c.t.Errorf("%s: %d values, reference has %d", name, len(got), len(ref))
		return
	}
	tol := goldenTol[group]
	if scale == 0 {
		scale = rms(ref)
	}
	w := c.worstOf(group)
	bad := 0
	for i, r := range ref {
		d := math.Abs(float64(got[i]) - r)
		s := scale
		if math.Abs(r) < structuralZero*zeroScale {
			s = zeroScale
		}
		allowed := tol.abs*s + tol.rel*math.Abs(r)
		ratio := d / allowed
		if allowed == 0 {
			ratio = 0
			if d > 0 {
				ratio = math.Inf(1)
			}
		}
		w.add(ratio, d, fmt.Sprintf("%s[%d]", name, i))
		if !(ratio <= 1) {
			if bad < 3 {
				c.t.Errorf("%s[%d] = %.9g, reference %.9g (|diff| %.3g > %.3g)", name, i, got[i], r, d, allowed)
			}
			bad++
		}
	}
	if bad > 3 {
		c.t.Errorf("%s: %d of %d values out of tolerance", name, bad, len(ref))
	}
}

// matchScalar compares one float64 value.
func (c *goldenCase) matchScalar(group, name string, got, ref, allowed float64) {
	c.t.Helper()
	d := math.Abs(got - ref)
	c.worstOf(group).add(d/allowed, d, name)
	if !(d <= allowed) {
		c.t.Errorf("%s = %.12g, reference %.12g (|diff| %.3g > %.3g)", name, got, ref, d, allowed)
	}
}

func (c *goldenCase) worstOf(group string) *worst {
	w := c.worsts[group]
	if w == nil {
		w = &worst{}
		c.worsts[group] = w
	}
	return w
}

func gradGroup(k model.ParamKind) string {
	switch k {
	case model.ConvWeight, model.ConvBias:
		return "grad.conv"
	case model.FCWeight, model.FCBias:
		return "grad.fc"
	}
	return "grad.bn"
}

// structuralZero is the script's STRUCTURAL_ZERO: a bias gradient this small next to its weight's is
// zero but for rounding.
const structuralZero = 1e-9

// gradRMS is the RMS of the reference gradient of the named parameter of n elements, stored whole or as
// its norm.
func (c *goldenCase) gradRMS(name string, n int) float64 {
	if _, ok := c.g.Get("grad." + name); ok {
		return rms(c.float64s("grad." + name))
	}
	return c.float64s("grad_norm." + name)[0] / math.Sqrt(float64(n))
}

// zeroScale is the scale of the script's grad_scale for the elements of a bias gradient that are zero but
// for rounding: the RMS of the gradient of the weight beside it (a constant the bias adds that reaches a
// training-mode BN through linear layers only is removed by it: Inception-ResNet-v2's block8.conv2d.bias,
// and its BN channels whose ReLU masks nothing before the next BN). 0 for a parameter that is no bias.
func (c *goldenCase) zeroScale(net *model.Net, p *model.Param) float64 {
	name, ok := strings.CutSuffix(p.Name, ".bias")
	if !ok {
		return 0
	}
	w, ok := net.Param(name + ".weight")
	if !ok {
		return 0
	}
	return c.gradRMS(w.Name, w.Shape.Numel())
}

// matchStored checks one gradient (kind "grad") or running statistic after the step (kind "after"): whole,
// or through the sample, norm and projections the script stored for large tensors. A whole tensor's
// elements below structuralZero times zeroScale are measured on zeroScale (matchZeros; 0: none is).
func (c *goldenCase) matchStored(kind, group string, p *model.Param, g []float32, zeroScale float64) {
	c.t.Helper()
	if _, ok := c.g.Get(kind + "." + p.Name); ok {
		c.matchZeros(group, kind+"."+p.Name, g, c.float64s(kind+"."+p.Name), 0, zeroScale)
		return
	}
	norm := c.float64s(kind + "_norm." + p.Name)[0]
	index := c.int64s(kind + "_index." + p.Name)
	sample := make([]float32, len(index))
	for i, j := range index {
		sample[i] = g[j]
	}
	scale := norm / math.Sqrt(float64(len(g)))
	c.match(group, kind+"_sample."+p.Name, sample, c.float64s(kind+"_sample."+p.Name), scale)

	// With every element within abs*scale + rel*|ref|, the error vector's L2 norm is at most
	// (abs + rel)*norm: a bound for the norm, and five times it for a projection on random signs.
	tol := goldenTol[group]
	bound := (tol.abs + tol.rel) * norm
	sum := 0.0
	for _, x := range g {
		sum += float64(x) * float64(x)
	}
	c.matchScalar(group, kind+"_norm."+p.Name, math.Sqrt(sum), norm, bound)
	for j, ref := range c.float64s(kind + "_proj." + p.Name) {
		sign := goldenUniform(goldenKey(fmt.Sprintf("proj%d:", j), p.Name), len(g))
		dot := 0.0
		for i, x := range g {
			if sign[i] < 0.5 {
				dot -= float64(x)
			} else {
				dot += float64(x)
			}
		}
		c.matchScalar(group, fmt.Sprintf("%s_proj.%s[%d]", kind, p.Name, j), dot, ref, 5*bound)
	}
}

func TestGoldenTorchvision(t *testing.T) {
	for _, arch := range []string{"cifar_resnet20", "resnet18", "resnet50", "resnext50_32x4d", "resnetv2_50", "seresnet50",
		"seresnext50_32x4d", "densenet121", "inception_resnet_v2"} {
		t.Run(arch, func(t *testing.T) { runGolden(t, arch) })
	}
}

func runGolden(t *testing.T, arch string) {
	g, err := safetensors.ReadFile(filepath.Join("testdata", arch+".golden.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	c := &goldenCase{t: t, arch: arch, g: g, worsts: map[string]*worst{}}
	for k, want := range goldenTorch {
		if v, _, _ := strings.Cut(g.Metadata[k], "+"); v != want {
			t.Errorf("written by %s %q, want %s (scripts/setup-torch.sh)", k, g.Metadata[k], want)
		}
	}
	spec, err := model.Lookup(arch)
	if err != nil {
		t.Fatal(err)
	}
	if spec.InputSize, err = strconv.Atoi(g.Metadata["input_size"]); err != nil {
		t.Fatalf("input_size metadata: %v", err)
	}
	labels64 := c.int64s("labels")
	labels := make([]int32, len(labels64))
	for i, l := range labels64 {
		labels[i] = int32(l)
	}
	x, err := Float32s(c.tensor("input"))
	if err != nil {
		t.Fatal(err)
	}
	net, err := model.Build(cpu.New(), spec, len(labels))
	if err != nil {
		t.Fatal(err)
	}
	defer net.Free()

	// The weights: the F16 file PyTorch wrote for the CIFAR net, the shared generator's for the others.
	var state *safetensors.File
	label := arch + " golden weights"
	if spec.Family == model.CIFAR {
		label = filepath.Join("testdata", arch+".weights.safetensors")
		if state, err = safetensors.ReadFile(label); err != nil {
			t.Fatal(err)
		}
	} else {
		state = goldenState(net)
	}
	if err := Load(net, state, label); err != nil {
		t.Fatal(err)
	}
	if net.BatchesTracked != goldenBatchesTracked {
		t.Errorf("num_batches_tracked = %d after import, want %d", net.BatchesTracked, goldenBatchesTracked)
	}
	checkGoldenNames(t, net, g)
	for _, p := range net.Params {
		v, err := net.Get(p)
		if err != nil {
			t.Fatal(err)
		}
		sum := 0.0
		for _, x := range v {
			sum += float64(x)
		}
		ref := c.float64s("weight_sum." + p.Name)[0]
		c.matchScalar("weights (sum)", "weight_sum."+p.Name, sum, ref, goldenTol["weights (sum)"].rel*math.Max(math.Abs(ref), 1))
	}
	if t.Failed() {
		t.FailNow() // wrong weights: every comparison below would fail too
	}

	r, err := net.TrainStep(x, labels)
	if err != nil {
		t.Fatal(err)
	}
	loss := c.float64s("train.loss")[0]
	c.matchScalar("train.loss", "train.loss", r.LossSum/float64(r.N), loss, goldenTol["train.loss"].rel*loss)
	logits, err := net.Logits(nil)
	if err != nil {
		t.Fatal(err)
	}
	c.match("train.logits", "train.logits", logits, c.float64s("train.logits"), 0)
	for _, p := range net.Params {
		switch {
		case p.Kind.Trainable():
			grad := make([]float32, p.Shape.Numel())
			if err := net.Device().Download(grad, p.Grad); err != nil {
				t.Fatal(err)
			}
			c.matchStored("grad", gradGroup(p.Kind), p, grad, c.zeroScale(net, p))
		default:
			v, err := net.Get(p)
			if err != nil {
				t.Fatal(err)
			}
			group := "running_mean"
			if p.Kind == model.BNRunningVar {
				group = "running_var"
			}
			c.matchStored("after", group, p, v, 0)
		}
	}
	if net.BatchesTracked != goldenBatchesTracked+1 {
		t.Errorf("num_batches_tracked = %d after one training forward, want %d", net.BatchesTracked, goldenBatchesTracked+1)
	}

	if err := net.Forward(x, len(labels), false); err != nil {
		t.Fatal(err)
	}
	if logits, err = net.Logits(nil); err != nil {
		t.Fatal(err)
	}
	c.match("eval.logits", "eval.logits", logits, c.float64s("eval.logits"), 0)

	groups := make([]string, 0, len(c.worsts))
	for k := range c.worsts {
		groups = append(groups, k)
	}
	sort.Strings(groups)
	for _, k := range groups {
		w := c.worsts[k]
		t.Logf("%-14s tolerance abs %.0e*RMS + rel %.0e: max |diff| %.3g, worst %.3f of tolerance at %s", k, goldenTol[k].abs, goldenTol[k].rel, w.abs, w.ratio, w.where)
	}
}

// checkGoldenNames checks that the net's parameter table is PyTorch's: the golden file has a gradient
// entry for every parameter and an after-step entry for every running statistic of the PyTorch module,
// and the state_dict this package writes holds those names plus num_batches_tracked, nothing else.
func checkGoldenNames(t *testing.T, net *model.Net, g *safetensors.File) {
	t.Helper()
	torch := map[string]bool{}
	for _, x := range g.Tensors {
		for _, prefix := range []string{"grad.", "grad_norm.", "after.", "after_norm."} {
			if name, ok := strings.CutPrefix(x.Name, prefix); ok {
				torch[name] = true
			}
		}
	}
	ours := map[string]bool{}
	for _, p := range net.Params {
		ours[p.Name] = true
		if !torch[p.Name] {
			t.Errorf("the net has %s %v, the PyTorch module has no such tensor", p.Name, p.Shape)
		}
	}
	for name := range torch {
		if !ours[name] {
			t.Errorf("the PyTorch module has %s, the net does not", name)
		}
	}
	sd, err := StateDict(net)
	if err != nil {
		t.Fatal(err)
	}
	extra := 0
	for _, x := range sd.Tensors {
		if !torch[x.Name] && !strings.HasSuffix(x.Name, "."+batchesTrackedSuffix) {
			extra++
			t.Errorf("state_dict key %s is not PyTorch's", x.Name)
		}
	}
	if want := len(torch) + (len(torch)-countTrainable(net))/2; len(sd.Tensors) != want || extra > 0 {
		t.Errorf("state_dict has %d keys, want %d (parameters, running statistics and one counter per BN)", len(sd.Tensors), want)
	}
}

func countTrainable(net *model.Net) int {
	n := 0
	for _, p := range net.Params {
		if p.Kind.Trainable() {
			n++
		}
	}
	return n
}
