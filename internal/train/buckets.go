// This file holds the gradient buckets of a data-parallel step: contiguous ranges of the gradient store,
// each summed over the ranks as soon as backward has finished writing it, while backward goes on with the
// layers below, as PyTorch's DistributedDataParallel overlaps its bucket all-reduces with backward.

package train

import (
	"resnet/internal/backend"
	"resnet/internal/cpu"
	"resnet/internal/model"
)

// bucketFloats is a bucket's size: 25 MB of float32 gradients, DistributedDataParallel's bucket_cap_mb.
const bucketFloats = 25 << 20 / 4

// span is a range [lo, hi) of the gradient store.
type span struct{ lo, hi int }

// gradBuckets launches the buckets of each step in the same order on every rank, so that the ranks'
// collectives match: the order of the net's ReadyPoints, fixed by its layers, whatever the batch.
type gradBuckets struct {
	p       *parallel
	grads   backend.Tensor
	spans   []span // in launch order: from the end of the store down
	next    int    // spans[:next] are launched in the step in progress
	host    []float32
	work    chan []float32 // on the CPU, to the goroutine that sums them
	results chan error
	queued  int
}

// newGradBuckets are net's buckets of size floats, or nil where the step cannot overlap its sums with
// backward: the device's collectives (NCCL, queued behind the backward work) or, on the CPU, a goroutine
// running the host communicator beside backward. Elsewhere the gradients are summed after backward.
func newGradBuckets(p *parallel, net *model.Net, size int) *gradBuckets {
	_, onCPU := p.dev.(*cpu.Device)
	points := net.ReadyPoints()
	if (p.coll == nil && !onCPU) || points == nil {
		return nil
	}
	b := &gradBuckets{p: p, grads: net.GradientStore()}
	pending := b.grads.Numel()
	for i, from := range points {
		if pending-from >= size || (i == len(points)-1 && from < pending) {
			b.spans = append(b.spans, span{from, pending})
			pending = from
		}
	}
	if p.coll == nil {
		var err error
		if b.host, err = cpu.Float32s(b.grads); err != nil {
			return nil
		}
		b.work, b.results = make(chan []float32, len(b.spans)), make(chan error, len(b.spans))
		go func() {
			for v := range b.work {
				b.results <- p.comm.AllReduceSum(v)
			}
		}()
	}
	if !net.OnGradientsReady(b.ready) {
		b.close()
		return nil
	}
	return b
}

// startBuckets sums the gradients of each step in buckets while backward runs, where it can: one pass
// per step (accumulated micro-batches are summed after the last), run eagerly (a recorded CUDA graph
// replays no host call).
func (t *trainer) startBuckets() {
	size := bucketFloats
	if t.opt.bucketFloats != 0 {
		size = t.opt.bucketFloats
	}
	_, graphs := t.opt.Device.(backend.Grapher)
	if size < 0 || t.cfg.Train.AccumulateSteps > 1 || (graphs && t.cfg.CUDA.Graphs) {
		return
	}
	// Synchronised BN exchanges its statistics from backward itself: on the host communicator those
	// exchanges and the buckets' goroutine would reach the other ranks in an order that timing decides.
	if t.cfg.Model.SyncBN && t.par.coll == nil {
		return
	}
	t.buckets = newGradBuckets(t.par, t.net, size)
}

// ready launches the buckets that backward has completed.
func (b *gradBuckets) ready(from int) error {
	for b.next < len(b.spans) && b.spans[b.next].lo >= from {
		if err := b.launch(b.spans[b.next]); err != nil {
			return err
		}
		b.next++
	}
	return nil
}

func (b *gradBuckets) launch(s span) error {
	if b.p.coll != nil {
		return b.p.coll.AllReduceSum(b.grads, s.lo, s.hi-s.lo)
	}
	b.work <- b.host[s.lo:s.hi]
	b.queued++
	return nil
}

// finish launches the buckets backward did not (all of them on a rank without images in the step), waits
// for the sums, and makes ready for the next step.
func (b *gradBuckets) finish() error {
	err := b.ready(0)
	for ; b.queued > 0; b.queued-- {
		if e := <-b.results; err == nil {
			err = e
		}
	}
	b.next = 0
	return err
}

// close stops the CPU's summing goroutine once its work is done.
func (b *gradBuckets) close() {
	if b != nil && b.work != nil {
		close(b.work)
		b.work = nil
	}
}
