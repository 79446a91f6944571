// Package finite finds the values that no trained net holds: a NaN or an infinity, which a diverged run or
// a damaged file leaves behind, or a negative value where only non-negative ones make sense (a BN running
// variance, whose square root BN takes). The model's value checks, its scoring, evaluation and the CPU
// backend's FindNonFinite share this one scan.
package finite

import "math"

// FirstBad is the index of the first NaN or infinity in v or, when nonNegative is set, of the first NaN,
// infinity or negative value (-0 is not negative); len(v) when there is none. It reads v once and
// allocates nothing.
func FirstBad(v []float32, nonNegative bool) int {
	const exponent = 0x7f800000 // all ones in a NaN or an infinity
	for i, x := range v {
		// Testing the exponent bits, rather than math.IsNaN and math.IsInf in float64, is what makes the
		// scan fast: training scans every gradient at every step on the CPU.
		if math.Float32bits(x)&exponent == exponent || (nonNegative && x < 0) {
			return i
		}
	}
	return len(v)
}

// All reports whether every value of v is finite.
func All(v []float32) bool { return FirstBad(v, false) == len(v) }
