package model

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"resnet/internal/finite"
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
	s := strconv.FormatFloat(float64(e.Value), 'g', -1, 32) // NaN, +Inf, -Inf, or the number
	if e.Value < 0 && !math.IsInf(float64(e.Value), -1) {
		s += " (a variance cannot be negative)"
	}
	return s
}

// CheckValues returns a *ValueError for the first NaN or infinity of tensor name's values v, or, when
// name is a BN running variance (it ends in "running_var", as in the parameter table), for its first
// negative value; nil when there is none. It reads v once and allocates nothing unless it fails.
func CheckValues(name string, v []float32) error {
	end := finite.FirstBad(v, IsVariance(name))
	if end == len(v) {
		return nil
	}
	return &ValueError{Tensor: name, Index: end, Value: v[end]}
}

// IsVariance reports whether the tensor named name is a BN running variance, which cannot be negative.
func IsVariance(name string) bool { return strings.HasSuffix(name, "running_var") }
