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
