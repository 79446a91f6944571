// This file holds the input sizes a network takes. Padded convolutions and pooling keep every map at least
// 1x1, so most nets take any size; an option-A shortcut subsamples its input by exactly its stride, so a
// net with option-A shortcuts takes only sizes whose maps halve evenly at every stride-2 unit.

package model

import (
	"errors"
	"fmt"
)

// maxInputSearch bounds the sizes tried when looking for the ones a net takes.
const maxInputSearch = 4096

// spatialError is a layer the input's map is too small for, or does not divide evenly at.
type spatialError struct {
	layer string
	what  string
}

func (e *spatialError) Error() string { return e.layer + ": " + e.what }

// InputSizeError reports an input size a network cannot take, with the sizes it does take.
type InputSizeError struct {
	Model string
	H, W  int
	// Min is the smallest square side the network takes.
	Min int
	// Below and Above are the nearest square sides around a square input of at least Min that the
	// network takes (0 when none was found, or the input is not square or below Min).
	Below, Above int
	// Layer and Reason say where the shapes failed.
	Layer, Reason string
}

func (e *InputSizeError) Error() string {
	where := e.Layer + ": " + e.Reason
	if e.H == e.W && e.H < e.Min {
		return fmt.Sprintf("model %s needs inputs of at least %dx%d (got %dx%d: %s)", e.Model, e.Min, e.Min, e.W, e.H, where)
	}
	msg := fmt.Sprintf("model %s cannot take %dx%d inputs (%s)", e.Model, e.W, e.H, where)
	switch {
	case e.Below > 0 && e.Above > 0:
		msg += fmt.Sprintf("; the nearest sizes it takes are %dx%d and %dx%d", e.Below, e.Below, e.Above, e.Above)
	case e.Below > 0:
		msg += fmt.Sprintf("; the nearest size it takes is %dx%d", e.Below, e.Below)
	}
	return msg
}

func newInputSizeError(s Spec, h, w int, se *spatialError) *InputSizeError {
	e := &InputSizeError{Model: s.Name, H: h, W: w, Layer: se.layer, Reason: se.what}
	e.Min, _ = MinInputSize(s)
	if h != w || h < e.Min || e.Min == 0 {
		return e
	}
	for n := h - 1; n >= e.Min && e.Below == 0; n-- {
		if takes(s, n) {
			e.Below = n
		}
	}
	for n := h + 1; n <= h+maxInputSearch && e.Above == 0; n++ {
		if takes(s, n) {
			e.Above = n
		}
	}
	return e
}

// takes reports whether the net builds for square inputs of side n.
func takes(s Spec, n int) bool {
	_, err := buildGraph(s, n, n, false)
	return err == nil
}

// MinInputSize is the smallest square input side the spec's net takes: the stem, pooling and strides
// applied to the sides 1, 2, 3, ... until every stage keeps a map the next one can take.
func MinInputSize(s Spec) (int, error) {
	if err := s.Validate(); err != nil {
		return 0, err
	}
	for n := 1; n <= maxInputSearch; n++ {
		_, err := buildGraph(s, n, n, false)
		if err == nil {
			return n, nil
		}
		if se := (*spatialError)(nil); !errors.As(err, &se) {
			return 0, err
		}
	}
	return 0, fmt.Errorf("model %s: no input side up to %d fits its strides", s.Name, maxInputSearch)
}
