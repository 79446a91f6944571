package model

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ValueError names the first value of a tensor that no trained net holds: a NaN or an infinity, which a
// diverged run or a damaged file leaves behind and which turns every output of the net into NaN, or a
// negative running variance, whose square root BN would take.
type ValueError struct {
	Tensor string
	Index  int // into the tensor's values, row-major
	Value  float32
}

func (e *ValueError) Error() string { return fmt.Sprintf("%s[%d] is %s", e.Tensor, e.Index, e.What()) }

// What says what is wrong with the value: "NaN", "+Inf", "-Inf", or a negative variance.
func (e *ValueError) What() string {
	v := float64(e.Value)
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 32) + " (a variance cannot be negative)"
}

// CheckValues returns a *ValueError for the first NaN or infinity of tensor name's values v, or, when
// name is a BN running variance (it ends in "running_var", as in the parameter table), for its first
// negative value; nil when there is none. It reads v once and allocates nothing unless it fails.
func CheckValues(name string, v []float32) error {
	const exponent = 0x7f800000 // all ones in a NaN or an infinity
	variance := strings.HasSuffix(name, "running_var")
	for i, x := range v {
		if math.Float32bits(x)&exponent == exponent || (variance && x < 0) {
			return &ValueError{Tensor: name, Index: i, Value: x}
		}
	}
	return nil
}
