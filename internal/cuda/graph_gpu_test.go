//go:build cuda

package cuda

// CUDA graphs (cuda.graphs): a training step recorded once per key and replayed gives the bits of the
// eager step, records anew for a new batch size or loss scale, refuses what a graph cannot hold, keeps
// the memory it uses away from other allocations, and is destroyed with its net or device.

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"resnet/internal/backend"
	"resnet/internal/model"
)

// graphSchedule is a run of steps that goes through every state of a key: each step's batch size, loss
// scale, and what the step does with its key: the first step with a key warms up eagerly, the second
// records and launches, later ones only launch. The smaller batch is an epoch's last. An evaluation
// before a step converts the weights eagerly after the SGD step, so the filter copies are current when
// the recording starts (it must convert them anyway: its replays follow other SGD steps).
var graphSchedule = []struct {
	batch  int
	scale  float32
	launch int // 0 warm-up, 1 recording and launch, 2 launch only
	eval   bool
}{
	{4, 1, 0, false}, {4, 1, 1, true}, {4, 1, 2, false},
	{3, 1, 0, false}, {4, 1, 2, true}, {3, 1, 1, true}, {3, 1, 2, false},
	{4, 2, 0, false}, {4, 2, 1, false}, {4, 2, 2, false},
}

// liveGraphs is how many graphs d's GPU side holds.
func liveGraphs(t testing.TB, d *Device) int {
	t.Helper()
	n := -1
	mustOK(t, d.onOwnerLocked("liveGraphs", func(g gpu) error {
		if lg, ok := g.(interface{ liveGraphs() int }); ok {
			n = lg.liveGraphs()
		}
		return nil
	}))
	return n
}

// onOwnerLocked is onOwner for a test, which holds no method lock.
func (d *Device) onOwnerLocked(op string, fn func(gpu) error) error {
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	return d.onOwner(op, fn)
}

// Steps with graphs and without, from the same weights and batches, give the same losses, logits,
// gradients, running statistics and updated parameters bit for bit after every step, in f32 NCHW and bf16
// NHWC, fused and unfused; replayed steps queue no convolution of their own.
func TestGraphedTrainingStepsAreBitIdentical(t *testing.T) {
	openGPU(t, backend.Options{})
	spec, err := model.Lookup("cifar_resnet8")
	mustOK(t, err)
	for _, f := range []struct {
		dt      backend.DType
		layout  backend.Layout
		unfused bool
	}{
		{backend.F32, backend.NCHW, false},
		{backend.F32, backend.NCHW, true},
		{backend.BF16, backend.NHWC, false},
		{backend.BF16, backend.NHWC, true},
	} {
		opt := formatOptions(f.dt, f.layout, f.unfused)
		t.Run(fmt.Sprintf("%v_%v_unfused=%v", f.dt, f.layout, f.unfused), func(t *testing.T) {
			eager := buildNet(t, openGPU(t, opt), spec, 4)
			gopt := opt
			gopt.Graphs = true
			g := openGPU(t, gopt)
			graphed := buildNet(t, g, spec, 4)
			mustOK(t, eager.Init(5))
			mustOK(t, graphed.Init(5))
			for i, s := range graphSchedule {
				x, y := randomBatch(spec, s.batch, uint64(100+i))
				if s.eval {
					want, err := eager.Evaluate(x, y)
					mustOK(t, err)
					got, err := graphed.Evaluate(x, y)
					mustOK(t, err)
					if math.Float64bits(got.LossSum) != math.Float64bits(want.LossSum) {
						t.Errorf("evaluation before step %d: loss sum %v, want %v", i, got.LossSum, want.LossSum)
					}
				}
				g.ResetLaunchCounts()
				want, wantUpdated := trainStepScaled(t, eager, x, y, s.scale)
				got, gotUpdated := trainStepScaled(t, graphed, x, y, s.scale)
				counts := g.LaunchCounts()
				if launched := counts["cuGraphLaunch"] == 1; launched != (s.launch > 0) {
					t.Errorf("step %d (batch %d, scale %g): launched a graph: %v, want %v", i, s.batch, s.scale, launched, s.launch > 0)
				}
				if s.launch == 2 && counts["cudnnConvolutionForward"] != 0 {
					t.Errorf("step %d: a replayed step queued %d convolutions of its own", i, counts["cudnnConvolutionForward"])
				}
				if got.loss != want.loss || !slices.Equal(math32bits(got.logits), math32bits(want.logits)) {
					t.Errorf("step %d: loss %v, logits differ from the eager step's (loss %v)", i, got.loss, want.loss)
				}
				for name, v := range want.tensors {
					if !slices.Equal(math32bits(got.tensors[name]), math32bits(v)) {
						t.Errorf("step %d: %s differs from the eager step's", i, name)
					}
				}
				for name, v := range wantUpdated.tensors {
					if !slices.Equal(math32bits(gotUpdated.tensors[name]), math32bits(v)) {
						t.Errorf("step %d: %s after SGD differs from the eager step's", i, name)
					}
				}
				if graphed.BatchesTracked != eager.BatchesTracked {
					t.Errorf("step %d: BatchesTracked %d, want %d", i, graphed.BatchesTracked, eager.BatchesTracked)
				}
				if t.Failed() {
					return
				}
			}
		})
	}
}

// graphRig is a device with graphs and a small op sequence to record: a training-mode batch norm (which
// takes scratch and the reduction counters) into y.
type graphRig struct {
	d                           *Device
	x, y, gamma, beta, mean, vr backend.Tensor
	saveMean, saveInvStd, extra backend.Tensor
	key                         backend.GraphKey
}

func newGraphRig(t *testing.T) *graphRig {
	d := openGPU(t, backend.Options{Graphs: true})
	r := &graphRig{d: d}
	t.Cleanup(func() { d.DropGraphs(r) })
	r.key = backend.GraphKey{Owner: r, Batch: 2}
	alloc := func(shape ...int) backend.Tensor {
		x, err := d.Alloc(shape, backend.F32, backend.NCHW)
		mustOK(t, err)
		t.Cleanup(func() { d.Free(x) })
		return x
	}
	r.x, r.y = alloc(2, 3, 4, 4), alloc(2, 3, 4, 4)
	r.gamma, r.beta, r.mean, r.vr = alloc(3), alloc(3), alloc(3), alloc(3)
	r.saveMean, r.saveInvStd, r.extra = alloc(3), alloc(3), alloc(96)
	mustOK(t, d.Upload(r.x, uniformValues(seededRand(3), 96, -1, 1)))
	mustOK(t, d.Upload(r.gamma, []float32{1, 2, 3}))
	mustOK(t, d.Upload(r.vr, []float32{1, 1, 1}))
	return r
}

func (r *graphRig) bn() error {
	return r.d.BatchNormForwardTraining(backend.BatchNormParams{Eps: 1e-5, Momentum: 0.1, ReLU: true},
		backend.BatchNormTensors{X: r.x, Y: r.y, Gamma: r.gamma, Beta: r.beta, RunningMean: r.mean, RunningVar: r.vr,
			SaveMean: r.saveMean, SaveInvStd: r.saveInvStd})
}

// What a graph cannot hold is refused while recording, with an error naming the op, and the recording
// then fails as a whole: nothing of it is kept or launched, and the device goes on working.
func TestGraphRecordingRefusesWhatItCannotHold(t *testing.T) {
	r := newGraphRig(t)
	d := r.d
	host := make([]float32, 96)
	// A device's first Download grows its staging buffer, setup work that a recording refuses for its own
	// reason; download once here so that the download case meets the wait itself, whatever ran before.
	mustOK(t, d.Download(host, r.y))
	slot := []backend.SGDSlot{{Param: r.gamma, Grad: r.beta, Buf: r.mean}}
	coll := joinAlone(t, d)
	for i, c := range []struct {
		name, want string
		op         func() error
	}{
		{"download", "cuda: Download waits for the device, which a CUDA graph cannot record", func() error { return d.Download(host, r.y) }},
		{"sync", "cuda: Sync waits for the device", d.Sync},
		{"upload", "cuda: Upload copies from host memory", func() error { return d.Upload(r.x, host) }},
		{"sgd", "cuda: SGDStep runs with this step's learning rate", func() error {
			return d.SGDStep(backend.SGDParams{LR: 0.1}, slot)
		}},
		{"dropout", "cuda: DropoutForward draws the mask of one step, which every replay would draw again", func() error {
			return d.DropoutForward(backend.DropoutParams{P: 0.5}, r.x, r.y)
		}},
		{"all-reduce", "cuda: AllReduceSum runs a collective among processes, so a CUDA graph cannot record it",
			func() error { return coll.AllReduceSum(r.gamma, 0, 1) }},
		{"nested", "graphs do not nest", func() error { return d.Graph(backend.GraphKey{Owner: t}, r.bn) }},
		{"new memory", "cuda: Test: needs 1073741824 bytes of new device memory while a CUDA graph is recorded", func() error {
			// An op allocating what no op of the warm-up did.
			mustOK(t, d.begin("Test"))
			defer d.end()
			_, err := d.tempAlloc("Test", 1<<30)
			return err
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			key := backend.GraphKey{Owner: r, Batch: 100 + i}
			fn := func() error {
				if err := r.bn(); err != nil {
					return err
				}
				return c.op()
			}
			mustOK(t, d.Graph(key, r.bn)) // the warm-up
			live := liveGraphs(t, d)
			err := d.Graph(key, fn)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("recording with %s: error %v, want one containing %q", c.name, err, c.want)
			}
			if n := liveGraphs(t, d); n != live {
				t.Errorf("a failed recording left %d graphs on the GPU side, want %d", n, live)
			}
			mustOK(t, d.Download(host, r.y))
			mustOK(t, d.Graph(key, r.bn)) // warms up again, then records
			mustOK(t, d.Graph(key, r.bn))
			mustOK(t, d.Sync())
		})
	}
}

// The scratch a recorded graph uses is not handed to a tensor allocated while the graph lives (every
// replay would overwrite it), and goes back to the cache once the graph is dropped.
func TestGraphMemoryIsNotHandedOutAgain(t *testing.T) {
	r := newGraphRig(t)
	d := r.d
	for range 2 { // warm-up, then recording
		mustOK(t, d.Graph(r.key, r.bn))
	}
	d.opMu.Lock()
	held := slices.Clone(d.held)
	d.opMu.Unlock()
	if len(held) == 0 {
		t.Fatal("the recorded batch norm holds no scratch; the test needs some")
	}
	heldAt := map[uint64]bool{}
	var tensors []backend.Tensor
	for _, b := range held {
		heldAt[b.blk.ptr] = true
		x, err := d.Alloc(backend.Shape{int(b.blk.class / 4)}, backend.F32, backend.NCHW)
		mustOK(t, err)
		defer d.Free(x)
		tensors = append(tensors, x)
	}
	for i, x := range tensors {
		if p := x.Buf.(*buffer).blk.ptr; heldAt[p] {
			t.Fatalf("tensor %d got block %#x, which the graph uses", i, p)
		}
		mustOK(t, d.Upload(x, slices.Repeat([]float32{float32(i + 1)}, x.Numel())))
	}
	mustOK(t, d.Graph(r.key, r.bn)) // a replay
	for i, x := range tensors {
		v := make([]float32, x.Numel())
		mustOK(t, d.Download(v, x))
		if v[0] != float32(i+1) || v[len(v)-1] != float32(i+1) {
			t.Fatalf("tensor %d holds %v after a replay, want %d", i, v[0], i+1)
		}
	}
	d.DropGraphs(r)
	d.opMu.Lock()
	left, upTo := len(d.held), d.heldUpTo
	d.opMu.Unlock()
	if left != 0 || upTo != 0 {
		t.Errorf("after DropGraphs %d blocks are still held (up to %d), want none", left, upTo)
	}
}

// Freeing a net drops its graphs, and closing a device destroys the graphs it still has.
func TestGraphsAreDestroyedWithTheirNetAndDevice(t *testing.T) {
	openGPU(t, backend.Options{})
	spec, err := model.Lookup("cifar_resnet8")
	mustOK(t, err)
	dev, err := backend.Open("cuda", backend.Options{Graphs: true})
	mustOK(t, err)
	d := dev.(*Device)
	step := func(net *model.Net) {
		x, y := randomBatch(spec, 2, 1)
		for range 2 {
			_, err := net.TrainStep(x, y)
			mustOK(t, err)
		}
	}
	a, err := model.Build(d, spec, 2)
	mustOK(t, err)
	mustOK(t, a.Init(1))
	step(a)
	if n := liveGraphs(t, d); n != 1 {
		t.Fatalf("%d graphs after a warm-up and a recording, want 1", n)
	}
	a.Free()
	if n := liveGraphs(t, d); n != 0 {
		t.Errorf("%d graphs after the net was freed, want 0", n)
	}
	b, err := model.Build(d, spec, 2)
	mustOK(t, err)
	mustOK(t, b.Init(1))
	step(b)
	g := d.g
	mustOK(t, d.Close())
	if lg, ok := g.(interface{ liveGraphs() int }); ok && lg.liveGraphs() != 0 {
		t.Errorf("%d graphs after Close, want 0", lg.liveGraphs())
	}
}
