// Package jsonnum holds Float, a float64 that JSON can always hold. JSON has no NaN or infinity, and
// encoding/json refuses to write them, so a diverged run's loss would make a whole report or metrics line
// fail to encode; Float writes them as null and reads null back as NaN.
package jsonnum

import (
	"encoding/json"
	"math"
)

// Float is a float64 written to JSON as a number, or as null when it is NaN or infinite.
type Float float64

// Finite reports whether f is neither NaN nor infinite.
func (f Float) Finite() bool { return !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0) }

// MarshalJSON writes f as encoding/json writes a float64, or null when f is not finite.
func (f Float) MarshalJSON() ([]byte, error) {
	if !f.Finite() {
		return []byte("null"), nil
	}
	return json.Marshal(float64(f))
}

// UnmarshalJSON reads a number, or null as NaN.
func (f *Float) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = Float(math.NaN())
		return nil
	}
	var v float64
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*f = Float(v)
	return nil
}
