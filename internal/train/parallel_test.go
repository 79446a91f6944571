package train

import (
	"bytes"
	"errors"
	"io"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"resnet/internal/backend"
	"resnet/internal/config"
	"resnet/internal/cpu"
	"resnet/internal/dataset"
	"resnet/internal/dist"
	"resnet/internal/eval"
	"resnet/internal/model"
)

// testDistOptions keep a broken job's failures quick.
var testDistOptions = dist.Options{ConfigHash: "test", JoinTimeout: 10 * time.Second, OpTimeout: 5 * time.Second}

// loopbackComms connects world ranks in this process.
func loopbackComms(t *testing.T, world int) []dist.Communicator {
	t.Helper()
	groups, err := dist.Loopback(world, testDistOptions)
	if err != nil {
		t.Fatal(err)
	}
	comms := make([]dist.Communicator, world)
	for r, g := range groups {
		comms[r] = dist.NewCPU(g)
	}
	return comms
}

// runRanks runs cfg in dir as a job of world ranks, each a goroutine, and returns each rank's error.
// hooks, when set, gives a rank's test hooks, stop channel and output (Out nil: none). Like a process
// that exits, a rank closes its connections when its Run returns.
func runRanks(t *testing.T, cfg config.Config, dir string, resume bool, world int, hooks func(rank int) Options) []error {
	t.Helper()
	yml, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	comms := loopbackComms(t, world)
	errs := make([]error, world)
	var wg sync.WaitGroup
	for r := range world {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer comms[r].Close()
			var opt Options
			if hooks != nil {
				opt = hooks(r)
			}
			if opt.Out == nil {
				opt.Out = io.Discard
			}
			if opt.Device == nil {
				opt.Device = cpu.New()
			}
			opt.Config, opt.ConfigYAML, opt.RunDir, opt.Resume, opt.Comm = cfg, yml, dir, resume, comms[r]
			_, errs[r] = Run(opt)
		}()
	}
	wg.Wait()
	return errs
}

func mustRunRanks(t *testing.T, cfg config.Config, dir string, resume bool, world int) {
	t.Helper()
	for r, err := range runRanks(t, cfg, dir, resume, world, nil) {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
}

// isBNStatistic names the tensors that differ between a job of several ranks and one process
// accumulating the same global batch in as many micro-batches: each of the job's BN layers updates its
// running statistics once per step, from rank 0's share of the batch (which every rank then takes, as
// PyTorch's DistributedDataParallel broadcasts its buffers), while the accumulating process updates them
// once per micro-batch, from each in turn. Everything the training step computes from batch statistics
// (the loss, the gradients, the weights and momentum buffers) is the same.
func isBNStatistic(name string) bool {
	return strings.Contains(name, "running_mean") || strings.Contains(name, "running_var") || strings.Contains(name, "num_batches_tracked")
}

// sameTensors compares the final checkpoints of two runs bit for bit, except the tensors skip names.
func sameTensors(t *testing.T, what, dirA, dirB string, skip func(string) bool) {
	t.Helper()
	a, b := finalTensors(t, dirA), finalTensors(t, dirB)
	compared := 0
	for _, wt := range a.Tensors {
		if skip != nil && skip(wt.Name) {
			continue
		}
		gt, ok := b.Get(wt.Name)
		if !ok || !bytes.Equal(gt.Data, wt.Data) {
			t.Errorf("%s: tensor %s differs", what, wt.Name)
		}
		compared++
	}
	if compared == 0 {
		t.Fatalf("%s: no tensor compared", what)
	}
}

// trainColumns are the metrics that depend on the training steps only, not on the BN statistics.
func trainColumns(t *testing.T, dir string) [][3]float64 {
	t.Helper()
	ms, err := NewRunDir(dir).ReadMetrics()
	if err != nil {
		t.Fatal(err)
	}
	var out [][3]float64
	for _, m := range ms {
		out = append(out, [3]float64{float64(m.TrainLoss), float64(m.TrainErr), m.LR})
	}
	return out
}

// A job of two ranks trains as one process that accumulates the same global batch in two micro-batches:
// each rank's share is one micro-batch, each computes its loss gradient unscaled where the accumulating
// process scales it by 1/2 (exact), the CPU communicator adds rank 0's gradients and rank 1's as the
// accumulating process adds its two, and the update scales the sum by 1/2 (exact). So the weights and
// momentum buffers are the same bits, and so are the training loss and error. The job is also the same
// from run to run, BN statistics and evaluation included. The average of the weights, which every rank
// keeps, follows.
func TestTwoRanksTrainAsOneProcessAccumulating(t *testing.T) {
	root := t.TempDir()
	cfg := smallConfig(2)
	cfg.Train.EMADecay = 0.9
	two := filepath.Join(root, "two")
	mustRunRanks(t, cfg, two, false, 2)
	again := filepath.Join(root, "again")
	mustRunRanks(t, cfg, again, false, 2)

	acc := cfg
	acc.Train.AccumulateSteps = 2
	one := filepath.Join(root, "one")
	if _, err := runOnce(t, acc, one, false, nil, nil); err != nil {
		t.Fatal(err)
	}
	sameTensors(t, "2 ranks vs 1 process accumulating 2", one, two, isBNStatistic)
	if a, b := trainColumns(t, one), trainColumns(t, two); !reflect.DeepEqual(a, b) {
		t.Errorf("training loss, error and rate: 1 process %v, 2 ranks %v", a, b)
	}

	if got := readRecord(t, two).Environment["world_size"]; got != "2" {
		t.Errorf("reproducibility.json has world_size %q, want 2", got)
	}
	if got, ok := readRecord(t, one).Environment["world_size"]; ok {
		t.Errorf("a single process's reproducibility.json has world_size %q", got)
	}

	sameTensors(t, "2 ranks, run to run", two, again, nil)
	a, _ := NewRunDir(two).ReadMetrics()
	b, _ := NewRunDir(again).ReadMetrics()
	if !reflect.DeepEqual(stripTiming(a), stripTiming(b)) {
		t.Errorf("2 ranks, run to run: metrics differ:\n%+v\n%+v", a, b)
	}
}

// The ranks' evaluation, each scoring the batches dealt to it, gives the scores of one process: the same
// count of images, and the same totals added in the same order. 50 images in batches of 8 make 7
// batches, the last of 2, dealt 3, 2, 2 among three ranks.
func TestRanksEvaluateAsOneProcess(t *testing.T) {
	cfg := smallConfig(1)
	cfg.Dataset.TestSize, cfg.Eval.BatchSize = 50, 8
	data, err := OpenData(cfg.Dataset, cfg.Seed)
	if err != nil {
		t.Fatal(err)
	}
	_, ih, _ := data.Train.OutputShape()
	spec, err := SpecFor(cfg.Model, data.Train.NumClasses(), ih)
	if err != nil {
		t.Fatal(err)
	}
	setup := func(opt dataset.LoaderOptions) (*model.Net, *dataset.Loader) {
		net, err := model.Build(cpu.New(), spec, cfg.Eval.BatchSize)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(net.Free)
		if err := net.Init(cfg.Seed); err != nil {
			t.Fatal(err)
		}
		opt.BatchSize, opt.Workers = cfg.Eval.BatchSize, 1
		l, err := dataset.NewPipelineLoader(data.Eval, opt)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.Close)
		return net, l
	}
	net, test := setup(dataset.LoaderOptions{})
	want, err := eval.OneCrop(net, test, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want.N != 50 {
		t.Fatalf("one process scored %d images, want 50", want.N)
	}
	const world = 3
	comms := loopbackComms(t, world)
	got, errs := make([]eval.Scores, world), make([]error, world)
	var wg sync.WaitGroup
	for r := range world {
		net, test := setup(dataset.LoaderOptions{Rank: r, World: world, Deal: true})
		tr := &trainer{net: net, test: test, par: &parallel{comm: comms[r], dev: net.Device()}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer comms[r].Close()
			got[r], errs[r] = tr.score(nil)
		}()
	}
	wg.Wait()
	for r := range world {
		if errs[r] != nil {
			t.Fatalf("rank %d: %v", r, errs[r])
		}
		if got[r] != want {
			t.Errorf("rank %d scored %+v, one process %+v", r, got[r], want)
		}
	}
}

// A rank that dies (here its Run ends at step 5, and its connections close as a process's would) stops
// the others within the timeout, with an error naming it, and the checkpoint of the end of epoch 1
// stays intact.
func TestDeadRankStopsTheJob(t *testing.T) {
	cfg := smallConfig(3)
	cfg.Checkpoint.Every = 1
	dir := t.TempDir()
	killed := errors.New("killed")
	began := time.Now()
	errs := runRanks(t, cfg, dir, false, 2, func(rank int) Options {
		if rank != 1 {
			return Options{}
		}
		return Options{afterStep: func(st *State) error {
			if st.Step == 5 {
				return killed
			}
			return nil
		}}
	})
	if !errors.Is(errs[1], killed) {
		t.Fatalf("rank 1 returned %v", errs[1])
	}
	if errs[0] == nil || !strings.Contains(errs[0].Error(), "rank 1") {
		t.Fatalf("rank 0 returned %v, want an error naming rank 1", errs[0])
	}
	if took := time.Since(began); took > testDistOptions.OpTimeout+10*time.Second {
		t.Errorf("the job took %s to stop", took)
	}
	t.Logf("rank 0: %v", errs[0])
	ck, err := FindCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := LoadCheckpoint(ck)
	if err != nil {
		t.Fatalf("the last checkpoint does not read back: %v", err)
	}
	if c.State.Epoch != 1 || c.State.Step != 4 {
		t.Errorf("the last checkpoint is at epoch %d step %d, want the end of epoch 1 (1, 4)", c.State.Epoch, c.State.Step)
	}
}

// A run of two ranks stopped mid-epoch continues in one process (accumulating two micro-batches), and a
// run of one process continues as two ranks: both end with the weights of an uninterrupted run of two
// ranks, the BN statistics aside (see isBNStatistic).
func TestResumeAcrossWorldSizes(t *testing.T) {
	root := t.TempDir()
	cfg := smallConfig(2)
	full := filepath.Join(root, "full")
	mustRunRanks(t, cfg, full, false, 2)
	acc := cfg
	acc.Train.AccumulateSteps = 2

	twoThenOne := filepath.Join(root, "two-then-one")
	stop := make(chan struct{})
	errs := runRanks(t, cfg, twoThenOne, false, 2, func(rank int) Options {
		h := Options{Stop: stop}
		if rank == 0 {
			h.afterStep = func(st *State) error {
				if st.Step == 5 {
					close(stop)
				}
				return nil
			}
		}
		return h
	})
	for r, err := range errs {
		if !errors.Is(err, ErrInterrupted) {
			t.Fatalf("rank %d of the stopped job returned %v, want ErrInterrupted", r, err)
		}
	}
	ck, err := FindCheckpoint(twoThenOne)
	if err != nil {
		t.Fatal(err)
	}
	// Rank 0's request, made after step 5, reaches the others with the next step's results.
	if c, err := LoadCheckpoint(ck); err != nil || c.State.Step != 6 {
		t.Fatalf("the stopped job's checkpoint: %v, step %d, want step 6", err, c.State.Step)
	}
	if _, err := runOnce(t, acc, twoThenOne, true, nil, nil); err != nil {
		t.Fatal(err)
	}
	sameTensors(t, "2 ranks then 1 process", full, twoThenOne, isBNStatistic)

	oneThenTwo := filepath.Join(root, "one-then-two")
	interruptAt(t, acc, oneThenTwo, 3)
	mustRunRanks(t, cfg, oneThenTwo, true, 2)
	sameTensors(t, "1 process then 2 ranks", full, oneThenTwo, isBNStatistic)
}

// A global batch that does not divide among the ranks, or whose share does not divide into the
// micro-batches, is refused at the start, naming the numbers.
func TestWorldMustDivideTheBatch(t *testing.T) {
	cfg := smallConfig(1)
	if err := CheckWorld(cfg, 2); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		world, accumulate int
		want              string
	}{
		{3, 1, "train.batch_size 16 (the global batch) does not divide among 3 ranks"},
		{4, 8, "each of the 4 ranks trains on 4 images of the global batch of 16, which do not split into train.accumulate_steps 8"},
	} {
		cfg.Train.AccumulateSteps = c.accumulate
		err := CheckWorld(cfg, c.world)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("world %d: got %v, want %q", c.world, err, c.want)
		}
	}
	cfg.Train.AccumulateSteps = 1
	for r, err := range runRanks(t, cfg, t.TempDir(), false, 3, nil) {
		if err == nil || !strings.Contains(err.Error(), "does not divide among 3 ranks") {
			t.Errorf("rank %d: got %v", r, err)
		}
	}
}

// A step whose gradients are not finite on one rank only is skipped by all (train.on_nonfinite: skip),
// rank 0 naming the rank, as one process skips it; with train.on_nonfinite: stop, every rank stops.
func TestRanksAgreeOnANonFiniteStep(t *testing.T) {
	cfg := smallConfig(1)
	cfg.Train.OnNonFinite, cfg.Train.MaxNonFiniteSteps = config.OnNonFiniteSkip, 3
	poison := poisonGradient(func(s int64) bool { return s == 2 })
	root := t.TempDir()
	two := filepath.Join(root, "two")
	var out strings.Builder
	onRank1 := func(rank int) Options {
		if rank == 0 {
			return Options{Out: &out}
		}
		return Options{afterBackward: poison}
	}
	for r, err := range runRanks(t, cfg, two, false, 2, onRank1) {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	want := "epoch 1 step 2 (lr 0.05): on rank 1, the gradient of layer1.0.conv1.weight[5] is NaN; update skipped (1 in a row"
	if !strings.Contains(out.String(), want) {
		t.Errorf("rank 0's output lacks %q:\n%s", want, out.String())
	}
	if ms, err := NewRunDir(two).ReadMetrics(); err != nil || len(ms) != 1 || ms[0].NonFiniteSteps != 1 {
		t.Fatalf("metrics %+v, %v; want nonfinite_steps 1", ms, err)
	}
	acc := cfg
	acc.Train.AccumulateSteps = 2
	one := filepath.Join(root, "one")
	if err := runHooked(t, acc, one, false, io.Discard, nil, Options{afterBackward: poison}); err != nil {
		t.Fatal(err)
	}
	sameTensors(t, "a skipped step, 2 ranks vs 1 process", one, two, isBNStatistic)

	cfg.Train.OnNonFinite = config.OnNonFiniteStop
	for r, err := range runRanks(t, cfg, filepath.Join(root, "stop"), false, 2, onRank1) {
		if !errors.Is(err, ErrDiverged) || !strings.Contains(err.Error(), "on rank 1, the gradient of layer1.0.conv1.weight[5] is NaN") {
			t.Errorf("rank %d: %v, want the divergence on rank 1", r, err)
		}
	}
}

// hostCopyDevice is the CPU device seen only through backend.Device, as a GPU without collectives of its
// own is: the ranks' collectives go through host copies (Download, the host communicator, Upload).
type hostCopyDevice struct{ backend.Device }

// Host copies give the same bits as collectives on the CPU tensors in place.
func TestRanksThroughHostCopies(t *testing.T) {
	root := t.TempDir()
	cfg := smallConfig(1)
	direct := filepath.Join(root, "direct")
	mustRunRanks(t, cfg, direct, false, 2)
	copied := filepath.Join(root, "copied")
	for r, err := range runRanks(t, cfg, copied, false, 2, func(int) Options {
		return Options{Device: hostCopyDevice{cpu.New()}}
	}) {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	sameTensors(t, "host copies vs in place", direct, copied, nil)
}

// Gradients summed in buckets while backward runs give the bits of one sum after backward: the same
// element-wise sums in rank order, whatever the ranges.
func TestBucketsSumAsAfterBackward(t *testing.T) {
	root := t.TempDir()
	cfg := smallConfig(1)
	run := func(name string, size int) string {
		dir := filepath.Join(root, name)
		for r, err := range runRanks(t, cfg, dir, false, 2, func(int) Options { return Options{bucketFloats: size} }) {
			if err != nil {
				t.Fatalf("%s, rank %d: %v", name, r, err)
			}
		}
		return dir
	}
	sameTensors(t, "buckets of 5000 vs after backward", run("after", -1), run("buckets", 5000), nil)
}

// A rank that runs no backward in a step (every image of its share unreadable) launches the same buckets
// in the same order, all at the end, adding zeros.
func TestBucketsOfARankWithoutImages(t *testing.T) {
	spec, err := model.Lookup("cifar_resnet8")
	if err != nil {
		t.Fatal(err)
	}
	build := func() *model.Net {
		n, err := model.Build(cpu.New(), spec, 2)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Free)
		if err := n.Init(5); err != nil {
			t.Fatal(err)
		}
		return n
	}
	x := make([]float32, 2*3*32*32)
	for i := range x {
		x[i] = float32(i%11) - 5
	}
	labels := []int32{3, 8}
	ref := build()
	if _, err := ref.TrainStep(x, labels); err != nil {
		t.Fatal(err)
	}
	want, _ := cpu.Float32s(ref.GradientStore())

	comms := loopbackComms(t, 2)
	nets := []*model.Net{build(), build()}
	errs := make([]error, 2)
	spans := make([]int, 2)
	var wg sync.WaitGroup
	for r := range 2 {
		b := newGradBuckets(&parallel{comm: comms[r], dev: nets[r].Device()}, nets[r], 5000)
		if b == nil {
			t.Fatal("no buckets on the CPU")
		}
		spans[r] = len(b.spans)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer comms[r].Close()
			defer b.close()
			if r == 0 {
				if _, err := nets[r].TrainStep(x, labels); err != nil {
					errs[r] = err
					return
				}
			} else if err := nets[r].Device().Zero(nets[r].GradientStore()); err != nil {
				errs[r] = err
				return
			}
			errs[r] = b.finish()
		}()
	}
	wg.Wait()
	if spans[0] < 4 {
		t.Fatalf("%d buckets of 5000 gradients, want several", spans[0])
	}
	for r, n := range nets {
		if errs[r] != nil {
			t.Fatalf("rank %d: %v", r, errs[r])
		}
		got, _ := cpu.Float32s(n.GradientStore())
		if !reflect.DeepEqual(got, want) {
			t.Errorf("rank %d: the summed gradients are not rank 0's plus zeros", r)
		}
	}
}

// With model.sync_bn a job of two ranks trains as one process on the whole global batch: every BN layer
// normalises with the statistics of both shares and moves its running statistics with them. The ranks
// exchange BN moments as float32, so the match is close rather than exact: every tensor of the final
// checkpoint, running statistics included, within syncTolerance of the one process's largest value of
// that tensor. The same job without sync_bn is farther off than that, which is what the option is for.
func TestSyncBNRanksTrainAsOneProcess(t *testing.T) {
	const syncTolerance = 1e-4
	root := t.TempDir()
	cfg := smallConfig(1)
	one := filepath.Join(root, "one")
	if _, err := runOnce(t, cfg, one, false, nil, nil); err != nil {
		t.Fatal(err)
	}
	synced := cfg
	synced.Model.SyncBN = true
	two := filepath.Join(root, "two")
	mustRunRanks(t, synced, two, false, 2)
	plain := filepath.Join(root, "plain")
	mustRunRanks(t, cfg, plain, false, 2)

	worst := func(dir string) (float64, string) {
		a, b := finalTensors(t, one), finalTensors(t, dir)
		var w float64
		var at string
		for _, ta := range a.Tensors {
			tb, ok := b.Get(ta.Name)
			if !ok || ta.DType != "F32" {
				continue
			}
			va, err := ta.Float32s()
			if err != nil {
				t.Fatal(err)
			}
			vb, err := tb.Float32s()
			if err != nil {
				t.Fatal(err)
			}
			var scale, diff float64
			for i := range va {
				scale = max(scale, math.Abs(float64(va[i])))
				diff = max(diff, math.Abs(float64(va[i])-float64(vb[i])))
			}
			if scale > 0 && diff/scale > w {
				w, at = diff/scale, ta.Name
			}
		}
		return w, at
	}
	if w, at := worst(two); w > syncTolerance {
		t.Errorf("2 ranks with sync_bn vs 1 process: %s off by %.3g of its largest value (tolerance %g)", at, w, syncTolerance)
	}
	if w, at := worst(plain); w <= syncTolerance {
		t.Errorf("2 ranks without sync_bn vs 1 process: at most %.3g off (%s), within sync_bn's tolerance", w, at)
	}
}
