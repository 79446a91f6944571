package finite

import (
	"math"
	"testing"
)

// Every position in short vectors: the first bad value is found wherever it is, and a
// negative one only when negatives are not allowed. The device op's full table is in
// internal/backend/backendtest, run on every backend.
func TestFirstBad(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for n := 1; n <= 9; n++ {
		for at := range n {
			for _, c := range []struct {
				bad         float32
				nonNegative bool
				want        int
			}{{nan, false, at}, {-inf, false, at}, {-1, false, n}, {-1, true, at}, {float32(math.Copysign(0, -1)), true, n}} {
				v := make([]float32, n)
				v[at] = c.bad
				if got := FirstBad(v, c.nonNegative); got != c.want {
					t.Fatalf("FirstBad(%v, %v) = %d, want %d", v, c.nonNegative, got, c.want)
				}
			}
		}
	}
}
