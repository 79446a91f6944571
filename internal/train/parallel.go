// This file holds what a rank of a data-parallel job does besides training on its share of each batch:
// it starts from rank 0's state, sums the gradients of every step over the ranks, agrees with the others
// on what the step gave, and scores its share of the evaluation.

package train

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"resnet/internal/backend"
	"resnet/internal/config"
	"resnet/internal/cpu"
	"resnet/internal/dataset"
	"resnet/internal/dist"
	"resnet/internal/eval"
	"resnet/internal/model"
)

// CheckWorld says whether a job of world ranks can train cfg: train.batch_size is the global batch, which
// must divide among the ranks, and each rank's share among train.accumulate_steps micro-batches.
func CheckWorld(cfg config.Config, world int) error {
	b, k := cfg.Train.BatchSize, max(cfg.Train.AccumulateSteps, 1)
	switch {
	case world <= 1:
		return nil
	case b%world != 0:
		return fmt.Errorf("train: train.batch_size %d (the global batch) does not divide among %d ranks; choose a multiple of %d", b, world, world)
	case (b/world)%k != 0:
		return fmt.Errorf("train: each of the %d ranks trains on %d images of the global batch of %d, which do not split into train.accumulate_steps %d micro-batches",
			world, b/world, b, k)
	}
	return nil
}

// parallel is the trainer's link to the other ranks of its job.
type parallel struct {
	comm dist.Communicator
	// coll, when the device has its own collectives, moves the tensors; comm still carries host values.
	coll backend.Collectives
	dev  backend.Device
	host []float32 // staging for a device without collectives whose memory the host cannot view
	// stop is rank 0's stop request as of the latest step, which every rank acts on.
	stop bool
	// synced says the BN statistics and the weights' average are rank 0's since the latest step.
	synced bool
}

// newParallel is nil for a job of one process.
func newParallel(opt Options) *parallel {
	if opt.Comm == nil || opt.Comm.WorldSize() <= 1 {
		return nil
	}
	return &parallel{comm: opt.Comm, coll: opt.Collectives, dev: opt.Device}
}

func (p *parallel) rank() int  { return p.comm.Rank() }
func (p *parallel) world() int { return p.comm.WorldSize() }

// allReduce replaces t, an f32 tensor, on every rank with its sum over the ranks.
func (p *parallel) allReduce(t backend.Tensor) error {
	if p.coll != nil {
		return p.coll.AllReduceSum(t, 0, t.Numel())
	}
	return p.onHost(t, p.comm.AllReduceSum)
}

// broadcast replaces t, an f32 tensor, on every rank with rank 0's.
func (p *parallel) broadcast(t backend.Tensor) error {
	if p.coll != nil {
		return p.coll.Broadcast(t, 0)
	}
	return p.onHost(t, func(v []float32) error { return p.comm.Broadcast(v, 0) })
}

// onHost runs a host collective on t's values: in place on the CPU, through a host copy elsewhere.
func (p *parallel) onHost(t backend.Tensor, collective func([]float32) error) error {
	if _, ok := p.dev.(*cpu.Device); ok {
		v, err := cpu.Float32s(t)
		if err != nil {
			return err
		}
		return collective(v)
	}
	if cap(p.host) < t.Numel() {
		p.host = make([]float32, t.Numel())
	}
	v := p.host[:t.Numel()]
	if err := p.dev.Download(v, t); err != nil {
		return err
	}
	if err := collective(v); err != nil {
		return err
	}
	return p.dev.Upload(t, v)
}

// bnSyncer is synchronised batch norm's link to the other ranks (model.sync_bn): the device's
// collectives where it has them, else the host communicator.
type bnSyncer struct{ p *parallel }

func (s bnSyncer) SumStats(t backend.Tensor) error { return s.p.allReduce(t) }
func (s bnSyncer) Rank() int                       { return s.p.rank() }
func (s bnSyncer) WorldSize() int                  { return s.p.world() }

// fromRank0 returns rank 0's b on every rank.
func (p *parallel) fromRank0(b []byte) ([]byte, error) {
	if p.rank() != 0 {
		b = nil
	}
	parts, err := p.comm.AllGather(b)
	if err != nil {
		return nil, err
	}
	return parts[0], nil
}

// syncedState is the part of the training state besides tensors that rank 0 hands the others.
type syncedState struct {
	State          State  `json:"state"`
	Restored       bool   `json:"restored"`
	BatchesTracked int64  `json:"batches_tracked"`
	EMAValid       bool   `json:"ema_valid"`
	Checkpoint     string `json:"checkpoint"`
}

// syncState makes every rank start where rank 0 does, which initialised the net or restored it from
// the run's checkpoint: its weights, BN statistics, momentum buffers, the weights' average, and the
// position. It returns whether rank 0 restored a checkpoint.
func (t *trainer) syncState(restored bool) (bool, error) {
	p := t.par
	for _, s := range []backend.Tensor{t.net.ValueStore(), t.net.MomentumStore()} {
		if err := p.broadcast(s); err != nil {
			return false, fmt.Errorf("train: rank 0's initial state: %w", err)
		}
	}
	if err := t.syncEMA(); err != nil {
		return false, err
	}
	s := syncedState{State: t.st, Restored: restored, BatchesTracked: t.net.BatchesTracked, Checkpoint: t.res.Checkpoint}
	s.EMAValid = t.ema != nil && t.ema.valid
	b, err := json.Marshal(s)
	if err != nil {
		return false, err
	}
	if b, err = p.fromRank0(b); err != nil {
		return false, fmt.Errorf("train: rank 0's initial state: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return false, fmt.Errorf("train: rank 0's initial state: %w", err)
	}
	t.st, t.net.BatchesTracked, t.res.Checkpoint = s.State, s.BatchesTracked, s.Checkpoint
	if t.ema != nil {
		t.ema.valid = s.EMAValid
	}
	return s.Restored, nil
}

// syncBuffers gives every rank rank 0's BN running statistics and weights' average, as PyTorch's
// DistributedDataParallel broadcasts its buffers: each rank's statistics saw only its share of the
// batches. Evaluations and checkpoints use these.
func (t *trainer) syncBuffers() error {
	if t.par == nil || t.par.synced {
		return nil
	}
	for _, q := range t.net.Params {
		if !q.Kind.Trainable() {
			if err := t.par.broadcast(q.Value); err != nil {
				return fmt.Errorf("train: rank 0's %s: %w", q.Name, err)
			}
		}
	}
	if err := t.syncEMA(); err != nil {
		return err
	}
	t.par.synced = true
	return nil
}

// syncEMA gives every rank rank 0's average of the weights.
func (t *trainer) syncEMA() error {
	if t.ema == nil {
		return nil
	}
	for _, v := range t.ema.vals {
		if err := t.par.comm.Broadcast(v, 0); err != nil {
			return fmt.Errorf("train: rank 0's average of the weights: %w", err)
		}
	}
	return nil
}

// Problem kinds of a step, as stepCheck.problem finds them.
const (
	stepFine = iota
	stepGradient
	stepLossOrStats
)

// stepShare is what one rank's step gave, summed over ranks into the step's result.
type stepShare struct {
	result  model.Result
	bad     int64  // unreadable images left out of the rank's share
	kind    int    // stepFine, stepGradient or stepLossOrStats
	stop    bool   // rank 0's stop request
	problem string // what stepCheck.problem said
}

// The host values the ranks exchange travel as little-endian float64s, which hold the counts exactly.
func appendFloats(b []byte, v ...float64) []byte {
	for _, x := range v {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
	}
	return b
}

func readFloats(b []byte, v []float64) []byte {
	for i := range v {
		v[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return b[8*len(v):]
}

// resultBytes is the size of an encoded model.Result.
const resultBytes = 5 * 8

func appendResult(b []byte, r model.Result) []byte {
	return appendFloats(b, float64(r.N), r.LossSum, float64(r.Top1), float64(r.Top5), float64(r.NonFinite))
}

func readResult(b []byte) (model.Result, []byte) {
	var v [5]float64
	b = readFloats(b, v[:])
	return model.Result{N: int(v[0]), LossSum: v[1], Top1: int(v[2]), Top5: int(v[3]), NonFinite: int(v[4])}, b
}

// stepShareBytes is the size of an encoded stepShare before its problem text.
const stepShareBytes = resultBytes + 3*8

func (s stepShare) encode() []byte {
	stop := 0.0
	if s.stop {
		stop = 1
	}
	b := appendFloats(appendResult(nil, s.result), float64(s.bad), float64(s.kind), stop)
	return append(b, s.problem...)
}

func decodeStepShare(b []byte) (stepShare, error) {
	if len(b) < stepShareBytes {
		return stepShare{}, errors.New("train: a rank sent a step result too short to read")
	}
	var s stepShare
	var v [3]float64
	s.result, b = readResult(b)
	b = readFloats(b, v[:])
	s.bad, s.kind, s.stop, s.problem = int64(v[0]), int(v[1]), v[2] != 0, string(b)
	return s, nil
}

// shareStep gathers every rank's share of the step and adds them up in rank order, so that every rank
// takes the same decision: the step's result, its unreadable images, the worst problem any rank found
// (named with its rank), and rank 0's stop request.
func (p *parallel) shareStep(mine stepShare) (stepShare, error) {
	parts, err := p.comm.AllGather(mine.encode())
	if err != nil {
		return stepShare{}, err
	}
	var sum stepShare
	for r, b := range parts {
		s, err := decodeStepShare(b)
		if err != nil {
			return stepShare{}, err
		}
		sum.result.N += s.result.N
		sum.result.LossSum += s.result.LossSum
		sum.result.Top1 += s.result.Top1
		sum.result.Top5 += s.result.Top5
		sum.result.NonFinite += s.result.NonFinite
		sum.bad += s.bad
		if s.kind > sum.kind {
			sum.kind, sum.problem = s.kind, fmt.Sprintf("on rank %d, %s", r, s.problem)
		}
		if r == 0 {
			sum.stop = s.stop
		}
	}
	p.stop, p.synced = sum.stop, false
	return sum, nil
}

// stopping says whether training stops after this step: a stop request, which in a job of several
// ranks is rank 0's as of the latest step, so that all stop at the same one.
func (t *trainer) stopping() bool {
	if t.par != nil {
		return t.par.stop
	}
	return stopRequested(t.opt.Stop)
}

// isRank0 says whether this process writes the run folder and reports: rank 0, or a single process.
func (t *trainer) isRank0() bool { return t.par == nil || t.par.rank() == 0 }

// score is the one-crop evaluation of the net as it stands. In a job of several ranks each scores the
// evaluation batches dealt to it; the results are gathered and added up in the single-process batch
// order, so the scores are those of one process.
func (t *trainer) score(onSkip func([]*dataset.BadExampleError)) (eval.Scores, error) {
	if t.par == nil {
		return eval.OneCrop(t.net, t.test, onSkip)
	}
	results, skipped, err := eval.OneCropBatches(t.net, t.test, onSkip)
	if err != nil {
		return eval.Scores{}, err
	}
	ordered, skipped, err := t.par.gatherDealt(results, skipped)
	if err != nil {
		return eval.Scores{}, fmt.Errorf("eval: gathering the ranks' scores: %w", err)
	}
	return eval.Combine(ordered, skipped)
}

// gatherDealt gathers every rank's results of the batches dealt to it (rank r has global batches r,
// r+W, ...) and its count of skipped images, and returns all the results in global batch order and the
// total skipped.
func (p *parallel) gatherDealt(results []model.Result, skipped int) ([]model.Result, int, error) {
	b := appendFloats(nil, float64(skipped))
	for _, r := range results {
		b = appendResult(b, r)
	}
	parts, err := p.comm.AllGather(b)
	if err != nil {
		return nil, 0, err
	}
	world := len(parts)
	ranks := make([][]model.Result, world)
	total, all := 0, 0
	for r, b := range parts {
		if len(b) < 8 || (len(b)-8)%resultBytes != 0 {
			return nil, 0, fmt.Errorf("rank %d sent %d bytes of scores, which do not read as whole batches", r, len(b))
		}
		var v [1]float64
		b = readFloats(b, v[:])
		total += int(v[0])
		for len(b) > 0 {
			var res model.Result
			res, b = readResult(b)
			ranks[r] = append(ranks[r], res)
		}
		all += len(ranks[r])
	}
	ordered := make([]model.Result, all)
	for j := range ordered {
		r, k := j%world, j/world
		if k >= len(ranks[r]) {
			return nil, 0, fmt.Errorf("rank %d scored %d batches, fewer than its share", r, len(ranks[r]))
		}
		ordered[j] = ranks[r][k]
	}
	return ordered, total, nil
}
