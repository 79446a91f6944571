package vision

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"testing"
)

// augmentGolden is testdata/augment_golden.json, written by scripts/augment_golden.py with torchvision.
type augmentGolden struct {
	Images map[string]struct {
		C, H, W int
		Pix     []byte
	}
	// Spaces holds each magnitude space's bins per op (nil for ops without a magnitude), at the main
	// image's size.
	Spaces map[string]map[string]struct {
		Signed bool
		Values []float32
	}
	UniformOps  map[string][]string `json:"uniform_ops"`
	AutoAugment map[string][][][3]any
	Cases       []struct {
		Image     string
		Op        string
		Magnitude float32
		Out       []byte
	}
	Erasing struct {
		C, H, W int
		Cases   []struct {
			Top, Left, Height, Width int
			Out                      []float32
		}
	}
}

// augmentGoldenPath is the golden file; RESNET_AUGMENT_GOLDEN points the test at another one written by
// the script, e.g. with --size 224x224 for a check at a realistic size.
func loadAugmentGolden(t *testing.T) *augmentGolden {
	path := os.Getenv("RESNET_AUGMENT_GOLDEN")
	if path == "" {
		path = "testdata/augment_golden.json"
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var g augmentGolden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &g
}

func opByName(t *testing.T, name string) AugmentOp {
	for op := range numAugmentOps {
		if op.String() == name {
			return op
		}
	}
	t.Fatalf("torchvision op %q has no AugmentOp", name)
	return 0
}

// Every op at every magnitude of the golden file gives torchvision's pixels exactly: the float32
// arithmetic is PyTorch's, fused multiply-adds included (without them Color and Contrast differ by one
// level in about 1% of the pixels, and torchvision's linspace magnitudes in their last bit).
func TestAugmentOpsMatchTorchvision(t *testing.T) {
	g := loadAugmentGolden(t)
	var sc AugmentScratch
	for _, c := range g.Cases {
		img := g.Images[c.Image]
		p := Planes{C: img.C, H: img.H, W: img.W, Pix: slices.Clone(img.Pix)}
		ApplyOp(&p, opByName(t, c.Op), float64(c.Magnitude), &sc)
		if diff := countDiff(p.Pix[:len(c.Out)], c.Out); diff > 0 {
			t.Errorf("%s(%v) on %s (%dx%d): %d of %d samples differ from torchvision's, first %s",
				c.Op, c.Magnitude, c.Image, img.W, img.H, diff, len(c.Out), firstDiff(p, c.Out))
		}
	}
}

func countDiff(a, b []byte) int {
	n := 0
	for i := range a {
		if a[i] != b[i] {
			n++
		}
	}
	return n
}

func firstDiff(p Planes, want []byte) string {
	for i := range want {
		if p.Pix[i] != want[i] {
			n := p.H * p.W
			return fmt.Sprintf("channel %d, y %d, x %d: %d, want %d", i/n, i%n/p.W, i%p.W, p.Pix[i], want[i])
		}
	}
	return ""
}

// The magnitude bins of each space equal torchvision's, float32 bit for bit.
func TestAugmentMagnitudesMatchTorchvision(t *testing.T) {
	g := loadAugmentGolden(t)
	main := g.Images["main"]
	spaces := map[string]struct {
		s     magnitudeSpace
		nbins int
	}{"standard31": {standardSpace, 31}, "standard10": {standardSpace, 10}, "wide31": {wideSpace, 31}}
	for name, want := range g.Spaces {
		sp, ok := spaces[name]
		if !ok {
			t.Fatalf("unknown space %q", name)
		}
		for opName, w := range want {
			op := opByName(t, opName)
			for i := range sp.nbins {
				m, signed, ok := sp.s.magnitude(op, i, sp.nbins, main.H, main.W)
				switch {
				case ok != (w.Values != nil) || signed != w.Signed:
					t.Fatalf("%s %s: magnitudes %v signed %v, want %v %v", name, opName, ok, signed, w.Values != nil, w.Signed)
				case ok && m != float64(w.Values[i]):
					t.Errorf("%s %s bin %d = %v, want %v", name, opName, i, m, w.Values[i])
				}
			}
		}
	}
	for name, want := range g.UniformOps {
		var got []string
		for _, op := range uniformOps {
			got = append(got, op.String())
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s ops %v, want %v", name, got, want)
		}
	}
}

// AutoAugment's sub-policies are torchvision's.
func TestAutoAugmentPoliciesMatchTorchvision(t *testing.T) {
	g := loadAugmentGolden(t)
	for name, policy := range map[string][][2]subPolicyOp{"imagenet": imagenetPolicy, "cifar10": cifar10Policy} {
		want := g.AutoAugment[name]
		if len(want) != len(policy) {
			t.Fatalf("%s: %d sub-policies, want %d", name, len(policy), len(want))
		}
		for i, sub := range policy {
			for j, step := range sub {
				w := want[i][j]
				bin := 0
				if w[2] != nil {
					bin = int(w[2].(float64))
				}
				if step.op.String() != w[0].(string) || step.prob != w[1].(float64) || step.bin != bin {
					t.Errorf("%s sub-policy %d step %d = %v %v %d, want %v", name, i, j, step.op, step.prob, step.bin, w)
				}
			}
		}
	}
}

func TestEraseMatchesTorchvision(t *testing.T) {
	g := loadAugmentGolden(t)
	e := g.Erasing
	for _, c := range e.Cases {
		chw := make([]float32, e.C*e.H*e.W)
		for i := range chw {
			chw[i] = float32(i + 1)
		}
		Erase(chw, e.C, e.H, e.W, Rect{X: c.Left, Y: c.Top, W: c.Width, H: c.Height})
		if !slices.Equal(chw, c.Out) {
			t.Errorf("erasing %dx%d at (%d, %d) differs from torchvision's", c.Width, c.Height, c.Left, c.Top)
		}
	}
}
