package model

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"

	"resnet/internal/backend"
	"resnet/internal/backend/backendtest"
	"resnet/internal/cpu"
)

// stepState is what a training step leaves in a net: every trainable parameter's gradient and every
// running statistic, in parameter order.
type stepState struct {
	names    []string
	kinds    []ParamKind
	grads    [][]float32
	running  [][]float32
	runNames []string
}

func readStepState(t *testing.T, net *Net) stepState {
	t.Helper()
	var s stepState
	for _, p := range net.Params {
		if !p.Kind.Trainable() {
			v, err := net.Get(p)
			if err != nil {
				t.Fatal(err)
			}
			s.running, s.runNames = append(s.running, v), append(s.runNames, p.Name)
			continue
		}
		g := make([]float32, p.Grad.Numel())
		if err := net.Device().Download(g, p.Grad); err != nil {
			t.Fatal(err)
		}
		s.grads, s.names, s.kinds = append(s.grads, g), append(s.names, p.Name), append(s.kinds, p.Kind)
	}
	return s
}

// syncedStep builds one net per rank, each on a CPU device of its own with the same initial weights,
// joins them with an in-memory syncer when synced is set, and runs one training step on every rank, rank r
// on images [r*n/world, (r+1)*n/world) of the batch, each in its own goroutine.
func syncedStep(t *testing.T, s Spec, world int, x []float32, y []int32, synced bool) []stepState {
	t.Helper()
	return syncedStepOn(t, s, world, x, y, synced, func() backend.Device { return cpu.NewWithWorkers(1) })
}

// syncedStepOn is syncedStep with the ranks' devices made by newDev.
func syncedStepOn(t *testing.T, s Spec, world int, x []float32, y []int32, synced bool, newDev func() backend.Device) []stepState {
	t.Helper()
	nets := make([]*Net, world)
	devs := make([]backend.Device, world)
	for r := range nets {
		devs[r] = newDev()
		net, err := Build(devs[r], s, len(y)/world)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(net.Free)
		if err := net.Init(21); err != nil {
			t.Fatal(err)
		}
		nets[r] = net
	}
	if synced {
		_, syncers := backendtest.NewSyncGroup(devs)
		for r, net := range nets {
			net.SetBatchNormSync(syncers[r])
		}
	}
	per, nb := len(x)/len(y), len(y)/world
	errs := make([]error, world)
	var wg sync.WaitGroup
	for r, net := range nets {
		wg.Go(func() {
			_, errs[r] = net.TrainStep(x[r*nb*per:(r+1)*nb*per], y[r*nb:(r+1)*nb])
		})
	}
	wg.Wait()
	states := make([]stepState, world)
	for r, net := range nets {
		if errs[r] != nil {
			t.Fatalf("rank %d: %v", r, errs[r])
		}
		states[r] = readStepState(t, net)
	}
	return states
}

// Ranks with synchronised BN, each on its slice of the batch, take the step one net takes on the whole
// batch: the mean of their gradients (what the trainer's all-reduce makes of them) and their running
// statistics match the whole batch's, and the ranks agree to the bit on the running statistics and BN's
// parameter gradients.
//
// Tolerance: the ranks' BN statistics and sums differ from the whole batch's by a few float32 roundings
// (internal/cpu's TestSyncedBatchNormMatchesWholeBatch bounds them per op), the convolutions and the
// classifier sum in another order over a slice than over the whole batch, and the loss is a mean over a
// slice, scaled back by the division by the world size. Those relative errors of a few 2^-24 grow through
// the net's layers in each direction, to about 9e-7 of a tensor's largest gradient here (the test logs the
// share of its tolerance used); 1e-5 of the largest leaves a factor of 10 for other data, while the ranks'
// gradients without synchronisation miss it by a factor of about 5e5.
func TestSyncedBatchNormNetMatchesWholeBatch(t *testing.T) {
	for _, world := range []int{2, 3} {
		t.Run(fmt.Sprintf("ranks%d", world), func(t *testing.T) {
			s := tinySpec(true, 'A')
			x, y := tinyBatch(2*world, 31)
			want := syncedStep(t, s, 1, x, y, false)[0]
			ranks := syncedStep(t, s, world, x, y, true)
			used := 0.0
			for i, name := range want.names {
				mean := make([]float32, len(want.grads[i]))
				for _, st := range ranks {
					for j, v := range st.grads[i] {
						mean[j] += v
					}
				}
				largest := 0.0
				for j := range mean {
					mean[j] /= float32(world)
					largest = max(largest, math.Abs(float64(want.grads[i][j])))
				}
				used = max(used, within(t, name+" gradient", mean, want.grads[i], 1e-5*largest))
				// BN's parameter gradients are the global batch's, divided by the world size, on every rank.
				for r, st := range ranks {
					if k := want.kinds[i]; (k == BNWeight || k == BNBias) && !sameBits(st.grads[i], ranks[0].grads[i]) {
						t.Fatalf("rank %d: %s gradient differs from rank 0's", r, name)
					}
				}
			}
			for i, name := range want.runNames {
				largest := 0.0
				for _, v := range want.running[i] {
					largest = max(largest, math.Abs(float64(v)))
				}
				for r, st := range ranks {
					used = max(used, within(t, fmt.Sprintf("rank %d: %s", r, name), st.running[i], want.running[i], 1e-5*largest))
					if !sameBits(st.running[i], ranks[0].running[i]) {
						t.Fatalf("rank %d: %s differs from rank 0's", r, name)
					}
				}
			}
			t.Logf("largest share of a tolerance used: %.3f", used)
			if unsynced := syncedStep(t, s, world, x, y, false); sameBits(unsynced[0].running[0], ranks[0].running[0]) {
				t.Fatal("the synchronised step's running statistics are those of an unsynchronised one")
			}
		})
	}
}

// One rank with a syncer takes exactly the step of a net without one.
func TestSyncedBatchNormOneRankChangesNothing(t *testing.T) {
	s := tinySpec(true, 'A')
	x, y := tinyBatch(4, 32)
	a, b := syncedStep(t, s, 1, x, y, false)[0], syncedStep(t, s, 1, x, y, true)[0]
	for i, name := range a.names {
		if !sameBits(a.grads[i], b.grads[i]) {
			t.Fatalf("%s gradient changed", name)
		}
	}
	for i, name := range a.runNames {
		if !sameBits(a.running[i], b.running[i]) {
			t.Fatalf("%s changed", name)
		}
	}
}

// graphRecorder is a CPU device that counts the training steps handed to it as device graphs.
type graphRecorder struct {
	*cpu.Device
	mu     sync.Mutex
	graphs int
}

func (g *graphRecorder) Graph(_ backend.GraphKey, fn func() error) error {
	g.mu.Lock()
	g.graphs++
	g.mu.Unlock()
	return fn()
}

func (g *graphRecorder) DropGraphs(any) {}

// A synchronised step is not handed to the device as a graph (its exchanges may go through the host,
// which a recording refuses); a step with a syncer of one rank still is.
func TestSyncedBatchNormStepIsNotRecorded(t *testing.T) {
	s := tinySpec(true, 'A')
	for _, world := range []int{1, 2} {
		x, y := tinyBatch(2*world, 33)
		var devs []*graphRecorder
		syncedStepOn(t, s, world, x, y, true, func() backend.Device {
			d := &graphRecorder{Device: cpu.NewWithWorkers(1)}
			devs = append(devs, d)
			return d
		})
		want := 0
		if world == 1 {
			want = 1
		}
		for r, d := range devs {
			if d.graphs != want {
				t.Errorf("world %d, rank %d: %d steps handed over as graphs, want %d", world, r, d.graphs, want)
			}
		}
	}
}

// within fails when an element of got is more than tol from want's, and returns the largest share of tol
// an element used.
func within(t *testing.T, what string, got, want []float32, tol float64) float64 {
	t.Helper()
	used := 0.0
	for j := range got {
		d := math.Abs(float64(got[j]) - float64(want[j]))
		if !(d <= tol) {
			t.Fatalf("%s: element %d is %v, want %v (tolerance %.3g)", what, j, got[j], want[j], tol)
		}
		if tol > 0 {
			used = max(used, d/tol)
		}
	}
	return used
}

// sameBits reports whether a and b hold the same float32 bits.
func sameBits(a, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
}
