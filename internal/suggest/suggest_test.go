package suggest

import "testing"

func TestDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "", 3}, {"", "ab", 2}, {"resnet50", "resnet50", 0}, {"resnt50", "resnet50", 1},
		{"resnet05", "resnet50", 2}, {"kitten", "sitting", 3}, {"RESNET_TRAIN_LRR", "RESNET_TRAIN_LR", 1},
	} {
		if got := Distance(c.a, c.b); got != c.want || Distance(c.b, c.a) != c.want {
			t.Errorf("Distance(%q, %q) = %d, want %d both ways", c.a, c.b, got, c.want)
		}
	}
}

func TestClosest(t *testing.T) {
	names := []string{"resnet18", "resnet34", "resnet50", "plain34"}
	if got, d := Closest("resnet53", names); got != "resnet50" || d != 1 {
		t.Errorf("Closest(resnet53) = %q, %d", got, d)
	}
	if got, d := Closest("resnet", names); got != "resnet18" || d != 2 { // the first of three at distance 2
		t.Errorf("Closest(resnet) = %q, %d", got, d)
	}
	if got, d := Closest("x", nil); got != "" || d != -1 {
		t.Errorf("Closest with no candidates = %q, %d", got, d)
	}
}
