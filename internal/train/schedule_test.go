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

// torchvision's reference schedule: LinearLR(start_factor=0.01) for the warm-up epochs, then
// CosineAnnealingLR(T_max = epochs - warm-up), both stepped once per epoch (SequentialLR). The rates
// PyTorch 2.15 gives for lr 0.5, 10 epochs and 3 of warm-up, at each epoch's start:
//
//	m = torch.nn.Linear(1, 1); opt = torch.optim.SGD(m.parameters(), lr=0.5)
//	s = SequentialLR(opt, [LinearLR(opt, 0.01, total_iters=3), CosineAnnealingLR(opt, T_max=7)], milestones=[3])
//	for e in range(10): record opt.param_groups[0]["lr"]; opt.step(); s.step()
//
// With train.schedule.per_epoch and warmup_start the schedule gives the same rate at every step of each
// epoch.
func TestPerEpochScheduleMatchesPyTorch(t *testing.T) {
	torch := []float64{0.005, 0.17, 0.335, 0.5, 0.47524221697560476, 0.4058724504646834, 0.3056302334890786,
		0.19436976651092142, 0.09412754953531663, 0.02475778302439524}
	s := NewSchedule(config.TrainConfig{LR: 0.5, Epochs: 10, Schedule: config.ScheduleConfig{
		Type: "cosine", WarmupEpochs: 3, WarmupStart: 0.01, PerEpoch: true}})
	for e, want := range torch {
		for _, frac := range []float64{0, 0.37, 0.999} {
			if got := s.LR(float64(e)+frac, false); math.Abs(got-want) > 1e-12 {
				t.Errorf("epoch %d + %.3f: lr %.15g, PyTorch %.15g", e, frac, got, want)
			}
		}
	}
	// Per step (the default), the warm-up ramps from warmup_start inside each epoch.
	s = NewSchedule(config.TrainConfig{LR: 0.5, Epochs: 10, Schedule: config.ScheduleConfig{
		Type: "cosine", WarmupEpochs: 2, WarmupStart: 0.1}})
	if got := s.LR(0, false); math.Abs(got-0.05) > 1e-15 {
		t.Errorf("lr at the start of the warm-up %v, want 0.05", got)
	}
	if got := s.LR(1, false); math.Abs(got-0.5*(0.1+0.9*0.5)) > 1e-15 {
		t.Errorf("lr half-way through the warm-up %v, want %v", got, 0.5*(0.1+0.9*0.5))
	}
}
