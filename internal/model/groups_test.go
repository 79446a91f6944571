package model

import "testing"

// Every name pattern belongs to exactly one family of the listing, so a new one cannot be left out of
// `resnet models`.
func TestEveryNamePatternHasOneGroup(t *testing.T) {
	for _, f := range families {
		n := 0
		for _, g := range groups {
			if contains(g.prefixes, f.prefix) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("name pattern %s belongs to %d families of the listing, want 1", f.prefix, n)
		}
	}
	for _, g := range groups {
		for _, p := range g.prefixes {
			found := false
			for _, f := range families {
				found = found || f.prefix == p
			}
			if !found {
				t.Errorf("family %q lists %s, which is not a registered name pattern", g.Name, p)
			}
		}
	}
	a, err := ParseArch("seresnext50_32x4d")
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := a.Group(); !ok || g.Name != "Squeeze-and-Excitation" {
		t.Errorf("seresnext50_32x4d is in %+v (%v), want the Squeeze-and-Excitation family", g, ok)
	}
}

// The model summary names what sets each family's units apart.
func TestUnitsDescribeTheFamily(t *testing.T) {
	for name, want := range map[string]string{
		"resnet50":          "bottleneck blocks",
		"cifar_resnet20":    "basic blocks",
		"resnext101_64x4d":  "bottleneck blocks (3x3 in 64 groups of 4 channels)",
		"wide_resnet50_2":   "bottleneck blocks (2x wide inside)",
		"resnetv2_50":       "pre-activation bottleneck blocks",
		"cifar_wrn40_4":     "pre-activation basic blocks (widen factor 4)",
		"seresnext50_32x4d": "bottleneck blocks (3x3 in 32 groups of 4 channels; squeeze-and-excitation, reduction 16)",
	} {
		s, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Units(); got != want {
			t.Errorf("%s: Units() = %q, want %q", name, got, want)
		}
	}
	s, _ := Lookup("cifar_wrn28_10")
	s.Dropout = 0.3
	if got := s.Units(); got != "pre-activation basic blocks (widen factor 10; dropout 0.3)" {
		t.Errorf("cifar_wrn28_10 with dropout: Units() = %q", got)
	}
}
