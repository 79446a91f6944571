package train

import (
	"math"

	"resnet/internal/config"
)

// Schedule gives the learning rate at a position of training. Positions are fractional epochs, so
// warmup and cosine move every step while step decays happen at epoch boundaries; with
// train.schedule.per_epoch the rate holds for each epoch at its value at the epoch's start.
type Schedule struct {
	base   float64
	epochs int
	c      config.ScheduleConfig
}

// NewSchedule builds the schedule of a training config.
func NewSchedule(t config.TrainConfig) Schedule {
	return Schedule{base: t.LR, epochs: t.Epochs, c: t.Schedule}
}

// LR is the rate at fractional epoch pos (epoch + batch/batches). warm reports whether the warm start of
// the ResNet-110 recipe is still in force; it overrides the schedule while it is.
func (s Schedule) LR(pos float64, warm bool) float64 {
	if warm && s.c.WarmStartLR > 0 {
		return s.c.WarmStartLR
	}
	if s.c.PerEpoch {
		pos = math.Floor(pos)
	}
	lr := s.base
	switch s.c.Type {
	case "step":
		for _, m := range s.c.Milestones {
			if pos >= float64(m) {
				lr *= s.c.Gamma
			}
		}
	case "cosine":
		start := s.c.WarmupEpochs
		span := float64(s.epochs) - start
		if span > 0 && pos > start {
			lr = 0.5 * s.base * (1 + math.Cos(math.Pi*math.Min(1, (pos-start)/span)))
		}
	}
	if w := s.c.WarmupEpochs; w > 0 && pos < w {
		lr *= s.c.WarmupStart + (1-s.c.WarmupStart)*pos/w
	}
	return lr
}
