package cpu

import (
	"slices"
	"testing"

	"resnet/internal/backend"
)

// After a warm-up step has grown the scratch buffers, convolutions allocate nothing: jobs are structs in
// the Device, the pool wakes its helpers through a channel, and scratch is reused.
func TestConvSteadyStateAllocatesNothing(t *testing.T) {
	for _, n := range []int{1, 4} { // one image: parallel GEMM; four: one image per piece
		d := NewWithWorkers(2)
		r := newRand(3)
		p := backend.ConvParams{Stride: 1, Pad: 1}
		x := tensor(t, d, randSlice(r, n*16*16*16), n, 16, 16, 16)
		w := tensor(t, d, randSlice(r, 16*16*9), 16, 16, 3, 3)
		y := tensor(t, d, nil, n, 16, 16, 16)
		dy := tensor(t, d, randSlice(r, n*16*16*16), n, 16, 16, 16)
		dx := tensor(t, d, nil, n, 16, 16, 16)
		dw := tensor(t, d, nil, 16, 16, 3, 3)
		step := func() {
			must(t, d.ConvForward(p, x, w, y))
			must(t, d.ConvBackwardData(p, dy, w, dx, false))
			must(t, d.ConvBackwardFilter(p, x, dy, dw))
		}
		step()
		if allocs := testing.AllocsPerRun(10, step); allocs != 0 {
			t.Errorf("batch %d: conv forward+backward allocates %v times per step after warm-up, want 0", n, allocs)
		}
		d.Close()
	}
}

// The same holds for a whole training step through every op.
func TestTrainingStepAllocatesNothing(t *testing.T) {
	d := NewWithWorkers(3)
	defer d.Close()
	s := newNetworkStep(t, d, 4)
	must(t, s.run())
	if allocs := testing.AllocsPerRun(5, func() { must(t, s.run()) }); allocs != 0 {
		t.Errorf("a training step allocates %v times after warm-up, want 0", allocs)
	}
}

// After one step every worker holds as much scratch as any worker needed, so a worker that gets a large
// piece for the first time many steps later (the scheduler decides who runs what) does not allocate then.
func TestScratchSharedAfterOneStep(t *testing.T) {
	d := NewWithWorkers(3)
	defer d.Close()
	s := newNetworkStep(t, d, 4)
	must(t, s.run())
	caps := func(ws *workspace) []int {
		var c []int
		for _, b := range ws.floats() {
			c = append(c, cap(*b))
		}
		return append(c, cap(ws.offs), cap(ws.gemm.patches))
	}
	want := caps(d.ws[0])
	for w, ws := range d.ws[1:] {
		if got := caps(ws); !slices.Equal(got, want) {
			t.Errorf("worker %d holds scratch capacities %v after one step, worker 0 %v", w+1, got, want)
		}
	}
	if slices.Max(want) == 0 {
		t.Error("the step used no scratch")
	}
}
