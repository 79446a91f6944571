package config

import (
	"math"
	"reflect"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// LossScale is train.loss_scale: a word (auto, dynamic, none) or a positive number, a static scale. A
// config file may write the number bare (loss_scale: 1024) or quoted; it is kept as text.
type LossScale string

// The words train.loss_scale takes besides a number.
const (
	LossScaleAuto    LossScale = "auto"
	LossScaleDynamic LossScale = "dynamic"
	LossScaleNone    LossScale = "none"
)

var lossScaleWords = []string{string(LossScaleAuto), string(LossScaleDynamic), string(LossScaleNone)}

// lossScaleType is the field type that readYAML lets be written as a word or a number.
var lossScaleType = reflect.TypeOf(LossScale(""))

// static is the static scale a number gives, and whether s is a number at all (a positive finite one or
// not: validation says which are allowed).
func (s LossScale) static() (float64, bool) {
	switch s {
	case LossScaleAuto, LossScaleDynamic, LossScaleNone:
		return 0, false
	}
	f, err := strconv.ParseFloat(string(s), 64)
	return f, err == nil
}

// MarshalYAML writes a number unquoted, as a config file would (loss_scale: 1024), and a word as text.
func (s LossScale) MarshalYAML() (any, error) {
	if _, ok := s.static(); ok {
		var n yaml.Node
		if yaml.Unmarshal([]byte(s), &n) == nil && len(n.Content) == 1 {
			if tag := n.Content[0].ShortTag(); tag == "!!int" || tag == "!!float" {
				return n.Content[0], nil
			}
		}
	}
	return string(s), nil
}

// LossScaling is what train.loss_scale means for a run: a dynamic scale (GradScaler's), a static one, or
// none (Dynamic false and Static 0).
type LossScaling struct {
	Dynamic bool
	// Static is the fixed scale of a number; 0 otherwise.
	Static float64
	// Init and GrowthInterval configure a dynamic scale (train.loss_scale_init and
	// train.loss_scale_growth_interval).
	Init           float64
	GrowthInterval int
}

// Enabled reports whether the loss is scaled at all.
func (l LossScaling) Enabled() bool { return l.Dynamic || l.Static > 0 }

// LossScaling resolves train.loss_scale for the run's cuda.precision: auto is dynamic for fp16 (whose
// gradients underflow without it) and none for fp32 and bf16 (which has fp32's exponent range), as
// PyTorch's AMP recipes use GradScaler for float16 only.
func (c Config) LossScaling() LossScaling {
	t := c.Train
	l := LossScaling{Init: t.LossScaleInit, GrowthInterval: t.LossScaleGrowthInterval}
	switch t.LossScale {
	case LossScaleDynamic:
		l.Dynamic = true
	case LossScaleAuto:
		l.Dynamic = c.CUDA.Precision == "fp16"
	case LossScaleNone:
	default:
		l.Static, _ = t.LossScale.static()
	}
	return l
}

// validateLossScale checks train.loss_scale and the dynamic scale's settings.
func validateLossScale(p *problems, t TrainConfig) {
	if f, ok := t.LossScale.static(); ok {
		if !(f > 0) || math.IsInf(f, 0) {
			p.add("train.loss_scale", "must be auto, dynamic, none or a positive number (a static scale)"+got(string(t.LossScale)))
		} else if f > math.MaxFloat32 {
			p.add("train.loss_scale", "must be at most float32's largest number, 3.4028235e+38"+got(string(t.LossScale)))
		}
	} else {
		p.choice("train.loss_scale", string(t.LossScale), nil, lossScaleWords...)
	}
	switch {
	case !(t.LossScaleInit > 0):
		p.add("train.loss_scale_init", "must be > 0 (GradScaler's init_scale is 65536)"+got(t.LossScaleInit))
	case t.LossScaleInit > math.MaxFloat32:
		p.add("train.loss_scale_init", "must be at most float32's largest number, 3.4028235e+38"+got(t.LossScaleInit))
	}
	if t.LossScaleGrowthInterval < 1 {
		p.add("train.loss_scale_growth_interval", "must be >= 1 (steps without overflow before the scale doubles)"+
			got(t.LossScaleGrowthInterval))
	}
}
