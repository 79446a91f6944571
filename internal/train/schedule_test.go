package train

import (
	"math"
	"testing"

	"resnet/internal/config"
)

func TestScheduleStepCosineWarmup(t *testing.T) {
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-12 }
	step := NewSchedule(config.TrainConfig{LR: 0.1, Epochs: 164, Schedule: config.ScheduleConfig{Type: "step", Milestones: []int{81, 122}, Gamma: 0.1}})
	for _, c := range []struct{ pos, want float64 }{{0, 0.1}, {80.99, 0.1}, {81, 0.01}, {121.5, 0.01}, {122, 0.001}, {163.9, 0.001}} {
		if got := step.LR(c.pos, false); !near(got, c.want) {
			t.Errorf("step LR(%v) = %v, want %v", c.pos, got, c.want)
		}
	}
	cos := NewSchedule(config.TrainConfig{LR: 0.2, Epochs: 10, Schedule: config.ScheduleConfig{Type: "cosine", WarmupEpochs: 2}})
	for _, c := range []struct{ pos, want float64 }{{0, 0}, {1, 0.1}, {2, 0.2}, {6, 0.1}, {10, 0}} {
		if got := cos.LR(c.pos, false); !near(got, c.want) {
			t.Errorf("cosine LR(%v) = %v, want %v", c.pos, got, c.want)
		}
	}
	warm := NewSchedule(config.TrainConfig{LR: 0.1, Epochs: 164, Schedule: config.ScheduleConfig{Type: "step", Milestones: []int{81}, Gamma: 0.1, WarmStartLR: 0.01, WarmStartUntilErr: 0.8}})
	if got := warm.LR(0.5, true); got != 0.01 {
		t.Errorf("warm start LR = %v, want 0.01", got)
	}
	if got := warm.LR(0.5, false); got != 0.1 {
		t.Errorf("after warm start LR = %v, want 0.1", got)
	}
	constant := NewSchedule(config.TrainConfig{LR: 0.05, Epochs: 3, Schedule: config.ScheduleConfig{Type: "constant"}})
	if got := constant.LR(2.5, false); got != 0.05 {
		t.Errorf("constant LR = %v", got)
	}
}
