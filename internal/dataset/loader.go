// This file holds the prefetching loader: worker goroutines turn a Source into normalised float32 batches
// ahead of the training loop, into reused buffers, delivered strictly in order.

package dataset

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
)

// LoaderOptions configures a Loader.
type LoaderOptions struct {
	// BatchSize is the number of examples per batch (the global batch when World > 1).
	BatchSize int
	// Rank and World, with World > 1, make the loader one rank's of a data-parallel job of World ranks.
	// The epoch's order and batches stay the single-process ones. A training loader (DropLast) delivers
	// rank Rank's share of every batch: batch i holds the global positions [i*B + r*B/W, i*B + (r+1)*B/W),
	// where BatchSize B must divide by World. With Deal set it delivers whole batches instead, dealt in
	// turn: global batches r, r+W, r+2W, ... (evaluation, where every image is scored once).
	Rank, World int
	Deal        bool
	// Shuffle permutes the order each epoch, as a function of (Seed, epoch) only.
	Shuffle bool
	// DropLast drops an incomplete last batch (training) instead of delivering it (evaluation).
	DropLast bool
	// Augment applies the CIFAR augmentation (zero-pad 4, random crop, horizontal flip). Only used by
	// NewLoader; a Pipeline does its own augmentation.
	Augment bool
	// Strict stops at the first bad example instead of skipping it.
	Strict bool
	// Seed drives the order and the augmentation.
	Seed int64
	// Workers is the number of goroutines loading and transforming examples; 0 means GOMAXPROCS.
	Workers int
	// Prefetch is the number of batches prepared ahead of the consumer; 0 means 3.
	Prefetch int
	// Norm is subtracted and divided out of every pixel. Only used by NewLoader.
	Norm Normalization
	// Staging, when set, allocates the batch buffers (n float32 values each): a device backend passes
	// its pinned host memory here so batches can be copied to the device asynchronously. Nil uses Go
	// memory.
	Staging func(n int) []float32
}

// Batch is one batch of normalised examples. Its buffers belong to the loader: hand it back with Release
// once done with it, and do not touch it afterwards.
type Batch struct {
	// Epoch and Index (the position of this batch inside the epoch) identify the batch.
	Epoch, Index int
	// N is the number of examples (at most the loader's batch size; less only for a kept last batch).
	N int
	// X holds N images, NCHW, normalised.
	X []float32
	// Labels holds the N labels.
	Labels []int32
	// Skipped lists the bad examples left out of this batch (N is smaller by as many).
	Skipped []*BadExampleError

	loader   *Loader
	x        []float32 // full-capacity storage behind X
	labels   []int32   // full-capacity storage behind Labels
	start    int       // position of the first example in the epoch order
	gen      uint64    // loader generation the batch was dispatched in
	pending  atomic.Int32
	chunkErr []error // error of each chunk; the first non-nil one is reported
	bad      []bool  // per example position: skipped as bad
	badErr   []*BadExampleError
	lent     bool // delivered by Next and not yet released; guarded by loader.freeMu
}

// chunk is a contiguous range of one batch's examples, the unit of work of a worker.
type chunk struct {
	batch    *Batch
	from, to int // example positions inside the batch
	part     int // index into batch.chunkErr
}

// Loader delivers the batches of one epoch at a time, in order. Next, Start and Close must be called
// from one goroutine; Release may be called from any.
//
// The content of batch (epoch, index) - which examples, in which order, and their augmentation - is a
// pure function of (Seed, epoch, index) and the options, whatever the number of workers and their
// timing, so a run resumed at (epoch, batch) sees exactly the batches an uninterrupted run would.
type Loader struct {
	src       Pipeline
	opt       LoaderOptions
	c, h, w   int
	imageSize int
	classes   int
	workers   int
	prefetch  int
	chunks    int // chunks per full batch
	size      int // examples of a full delivered batch: BatchSize, or a rank's share of it

	order   []int32 // the epoch's permutation of the source; read by workers
	batches int     // delivered per epoch

	jobs chan chunk
	done chan *Batch
	wg   sync.WaitGroup
	gen  atomic.Uint64 // bumped by Start and Close; workers skip chunks of older generations

	freeMu sync.Mutex
	free   []*Batch

	// Consumer state, owned by the goroutine calling Start and Next.
	started      bool
	closed       bool
	epoch        int
	nextDispatch int      // next batch index to hand to the workers
	nextDeliver  int      // next batch index Next returns
	inFlight     int      // batches dispatched and not yet back from the workers
	ready        []*Batch // finished batches, at index % prefetch
	err          error    // sticky error of the current epoch
}

const defaultPrefetch = 3

// NewLoader checks opt against src and starts the worker goroutines; Close stops them. Examples are
// normalised with opt.Norm and augmented with the CIFAR augmentation when opt.Augment is set.
func NewLoader(src Source, opt LoaderOptions) (*Loader, error) {
	if src == nil {
		return nil, errors.New("dataset: loader needs a source (got nil)")
	}
	p, err := SourcePipeline(src, opt.Augment, opt.Norm)
	if err != nil {
		return nil, fmt.Errorf("dataset: loader: %w", err)
	}
	return NewPipelineLoader(p, opt)
}

// NewPipelineLoader is NewLoader for a data set that transforms its own examples.
func NewPipelineLoader(src Pipeline, opt LoaderOptions) (*Loader, error) {
	if src == nil {
		return nil, errors.New("dataset: loader needs a source (got nil)")
	}
	if opt.BatchSize <= 0 {
		return nil, fmt.Errorf("dataset: loader batch size must be > 0 (got %d)", opt.BatchSize)
	}
	if opt.Workers < 0 {
		return nil, fmt.Errorf("dataset: loader workers must be >= 0 (got %d; 0 means one per CPU)", opt.Workers)
	}
	if opt.Prefetch < 0 {
		return nil, fmt.Errorf("dataset: loader prefetch must be >= 0 (got %d; 0 means %d)", opt.Prefetch, defaultPrefetch)
	}
	n := src.Len()
	if n <= 0 {
		return nil, errors.New("dataset: loader source is empty")
	}
	if int64(n) > 1<<31-1 {
		return nil, fmt.Errorf("dataset: loader source has %d examples; at most %d are supported", n, 1<<31-1)
	}
	c, h, w := src.OutputShape()
	if c <= 0 || h <= 0 || w <= 0 {
		return nil, fmt.Errorf("dataset: loader source has image shape %dx%dx%d; every dimension must be > 0", c, h, w)
	}

	global := (n + opt.BatchSize - 1) / opt.BatchSize
	if opt.DropLast {
		global = n / opt.BatchSize
	}
	if global == 0 {
		return nil, fmt.Errorf("dataset: loader batch size %d exceeds the %d examples; with drop_last no batch is left", opt.BatchSize, n)
	}
	batches, size, err := opt.share(global)
	if err != nil {
		return nil, err
	}

	workers, prefetch := opt.resolved()
	l := &Loader{
		src: src, opt: opt,
		c: c, h: h, w: w, imageSize: c * h * w,
		classes:  src.NumClasses(),
		workers:  workers,
		prefetch: prefetch,
		chunks:   min(workers, size),
		size:     size,
		order:    make([]int32, n),
		batches:  batches,
		ready:    make([]*Batch, prefetch),
	}
	// In flight are at most prefetch batches of at most chunks chunks each, so neither channel blocks.
	l.jobs = make(chan chunk, prefetch*l.chunks)
	l.done = make(chan *Batch, prefetch)
	l.wg.Add(workers)
	for range workers {
		go l.work()
	}
	return l, nil
}

// share is how many of the global batches a rank's loader delivers per epoch and the size of a full one.
func (opt LoaderOptions) share(global int) (batches, size int, err error) {
	switch {
	case opt.World <= 1:
		return global, opt.BatchSize, nil
	case opt.Rank < 0 || opt.Rank >= opt.World:
		return 0, 0, fmt.Errorf("dataset: loader rank %d is not one of the %d ranks", opt.Rank, opt.World)
	case opt.Deal:
		return (global - opt.Rank + opt.World - 1) / opt.World, opt.BatchSize, nil
	case !opt.DropLast:
		return 0, 0, fmt.Errorf("dataset: a loader sharing each batch among ranks must drop the last incomplete batch (or deal whole batches)")
	case opt.BatchSize%opt.World != 0:
		return 0, 0, fmt.Errorf("dataset: loader batch size %d does not divide among %d ranks", opt.BatchSize, opt.World)
	}
	return global, opt.BatchSize / opt.World, nil
}

// resolved is the number of workers and of prefetched batches opt asks for, defaults applied.
func (opt LoaderOptions) resolved() (workers, prefetch int) {
	workers, prefetch = opt.Workers, opt.Prefetch
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if prefetch == 0 {
		prefetch = defaultPrefetch
	}
	return workers, prefetch
}

// BatchesPerEpoch is the number of batches Next delivers in a full epoch.
func (l *Loader) BatchesPerEpoch() int { return l.batches }

// ExamplesPerEpoch is the number of examples a full epoch delivers.
func (l *Loader) ExamplesPerEpoch() int {
	if l.opt.DropLast {
		return l.batches * l.size
	}
	if l.opt.World > 1 {
		n := 0
		for i := range l.batches {
			lo, hi := l.span(i)
			n += hi - lo
		}
		return n
	}
	return len(l.order)
}

// Start begins delivering the batches of epoch from batch index startBatch (0 for a whole epoch; later
// to resume mid-epoch). Batches of a previous epoch that were not fetched yet are discarded; batches
// already returned by Next stay valid until released.
func (l *Loader) Start(epoch, startBatch int) error {
	if l.closed {
		return errors.New("dataset: loader Start after Close")
	}
	if epoch < 0 {
		return fmt.Errorf("dataset: loader epoch must be >= 0 (got %d)", epoch)
	}
	if startBatch < 0 || startBatch > l.batches {
		return fmt.Errorf("dataset: loader start batch %d outside [0, %d] for epoch %d", startBatch, l.batches, epoch)
	}
	l.gen.Add(1)
	l.drain()
	l.fillOrder(epoch)
	l.started = true
	l.epoch = epoch
	l.nextDispatch, l.nextDeliver = startBatch, startBatch
	l.err = nil
	l.dispatch()
	return nil
}

// Next returns the next batch of the epoch begun by Start, or (nil, nil) once the epoch is over. An
// error loading an example ends the epoch: Next keeps returning it until the next Start.
func (l *Loader) Next() (*Batch, error) {
	switch {
	case l.closed:
		return nil, errors.New("dataset: loader Next after Close")
	case !l.started:
		return nil, errors.New("dataset: loader Next before Start")
	case l.err != nil:
		return nil, l.err
	case l.nextDeliver >= l.batches:
		return nil, nil
	}
	l.dispatch()
	slot := l.nextDeliver % l.prefetch
	for l.ready[slot] == nil {
		b := <-l.done
		l.inFlight--
		l.ready[b.Index%l.prefetch] = b
	}
	b := l.ready[slot]
	l.ready[slot] = nil
	l.nextDeliver++
	for _, err := range b.chunkErr {
		if err != nil {
			l.err = err
			l.putFree(b)
			return nil, err
		}
	}
	l.compact(b)
	l.freeMu.Lock()
	b.lent = true
	l.freeMu.Unlock()
	l.dispatch()
	return b, nil
}

// Release hands b's buffers back for reuse. Releasing nil, a batch twice, or another loader's batch does
// nothing. Unreleased batches are simply garbage collected and replaced, at the cost of an allocation.
func (l *Loader) Release(b *Batch) {
	if b == nil || b.loader != l {
		return
	}
	l.freeMu.Lock()
	defer l.freeMu.Unlock()
	if !b.lent {
		return
	}
	b.lent = false
	l.free = append(l.free, b)
}

// Close stops the workers and waits for them to exit. The loader cannot be used afterwards; batches
// already delivered stay readable. Close is idempotent.
func (l *Loader) Close() {
	if l.closed {
		return
	}
	l.closed = true
	l.gen.Add(1)
	close(l.jobs)
	l.wg.Wait()
}

// drain waits for every dispatched batch to come back and returns all undelivered buffers to the pool.
func (l *Loader) drain() {
	for ; l.inFlight > 0; l.inFlight-- {
		l.putFree(<-l.done)
	}
	for i, b := range l.ready {
		if b != nil {
			l.putFree(b)
			l.ready[i] = nil
		}
	}
}

// fillOrder computes the epoch's order: the identity, or a permutation that depends only on (seed, epoch).
func (l *Loader) fillOrder(epoch int) {
	for i := range l.order {
		l.order[i] = int32(i)
	}
	if l.opt.Shuffle {
		var r exampleRand
		r.seed(uint64(l.opt.Seed)^0x6f72_6465_72, uint64(epoch)) // "order"
		for i := len(l.order) - 1; i > 0; i-- {
			j := r.intN(i + 1)
			l.order[i], l.order[j] = l.order[j], l.order[i]
		}
	}
}

// dispatch hands batches to the workers until prefetch batches are ahead of the consumer.
func (l *Loader) dispatch() {
	for l.nextDispatch < l.batches && l.nextDispatch-l.nextDeliver < l.prefetch {
		b := l.takeFree()
		b.Epoch, b.Index = l.epoch, l.nextDispatch
		lo, hi := l.span(l.nextDispatch)
		b.start, b.N = lo, hi-lo
		b.X = b.x[:b.N*l.imageSize]
		b.Labels = b.labels[:b.N]
		b.Skipped = b.Skipped[:0]
		clear(b.bad[:b.N])
		b.gen = l.gen.Load()
		parts := min(l.chunks, b.N)
		b.chunkErr = b.chunkErr[:parts]
		clear(b.chunkErr)
		b.pending.Store(int32(parts))
		for p := range parts {
			l.jobs <- chunk{batch: b, from: p * b.N / parts, to: (p + 1) * b.N / parts, part: p}
		}
		l.inFlight++
		l.nextDispatch++
	}
}

// span is the range of epoch positions that delivered batch i holds.
func (l *Loader) span(i int) (lo, hi int) {
	if l.opt.World > 1 && l.opt.Deal {
		i = i*l.opt.World + l.opt.Rank
	}
	lo = i * l.opt.BatchSize
	hi = min(lo+l.opt.BatchSize, len(l.order))
	if l.opt.World > 1 && !l.opt.Deal {
		lo, hi = lo+l.opt.Rank*l.size, lo+(l.opt.Rank+1)*l.size
	}
	return lo, hi
}

func (l *Loader) takeFree() *Batch {
	l.freeMu.Lock()
	defer l.freeMu.Unlock()
	if k := len(l.free); k > 0 {
		b := l.free[k-1]
		l.free[k-1] = nil
		l.free = l.free[:k-1]
		return b
	}
	n := l.size * l.imageSize
	x := []float32(nil)
	if l.opt.Staging != nil {
		x = l.opt.Staging(n)
	}
	if len(x) < n {
		x = make([]float32, n)
	}
	return &Batch{
		loader:   l,
		x:        x,
		labels:   make([]int32, l.size),
		chunkErr: make([]error, l.chunks),
		bad:      make([]bool, l.size),
		badErr:   make([]*BadExampleError, l.size),
	}
}

func (l *Loader) putFree(b *Batch) {
	l.freeMu.Lock()
	defer l.freeMu.Unlock()
	b.lent = false
	l.free = append(l.free, b)
}

// work is a worker goroutine: it fills chunks until the job queue is closed. The last worker to finish
// a batch's chunks hands the batch back.
func (l *Loader) work() {
	defer l.wg.Done()
	worker := l.src.NewWorker()
	pcg := new(rand.PCG)
	rng := rand.New(pcg)
	for job := range l.jobs {
		b := job.batch
		if b.gen == l.gen.Load() {
			b.chunkErr[job.part] = l.fill(b, job.from, job.to, worker, pcg, rng)
		}
		if b.pending.Add(-1) == 0 {
			l.done <- b
		}
	}
}

// fill loads the examples at positions [from, to) of batch b. A bad example is marked for compaction
// (or, in strict mode, ends the epoch with its error).
func (l *Loader) fill(b *Batch, from, to int, worker PipelineWorker, pcg *rand.PCG, rng *rand.Rand) error {
	for k := from; k < to; k++ {
		index := int(l.order[b.start+k])
		// The randomness of an example depends on (Seed, epoch, example) only.
		pcg.Seed(mix64(uint64(l.opt.Seed)^0x6175_676d_656e_74^mix64(uint64(b.Epoch))), mix64(uint64(index))) // "augment"
		label, err := worker.Load(index, rng, b.X[k*l.imageSize:(k+1)*l.imageSize])
		if err != nil {
			var bad *BadExampleError
			if errors.As(err, &bad) && !l.opt.Strict {
				bad.Index = index
				b.bad[k], b.badErr[k] = true, bad
				continue
			}
			return fmt.Errorf("dataset: loading example %d (epoch %d, batch %d): %w", index, b.Epoch, b.Index, err)
		}
		if label < 0 || label >= l.classes {
			return fmt.Errorf("dataset: example %d has label %d outside [0, %d) (epoch %d, batch %d)", index, label, l.classes, b.Epoch, b.Index)
		}
		b.Labels[k] = int32(label)
	}
	return nil
}

// compact moves the good examples of b to the front, in order, and lists the skipped ones.
func (l *Loader) compact(b *Batch) {
	out := 0
	for k := 0; k < b.N; k++ {
		if b.bad[k] {
			b.Skipped = append(b.Skipped, b.badErr[k])
			b.badErr[k] = nil
			continue
		}
		if out != k {
			copy(b.X[out*l.imageSize:(out+1)*l.imageSize], b.X[k*l.imageSize:(k+1)*l.imageSize])
			b.Labels[out] = b.Labels[k]
		}
		out++
	}
	b.N = out
	b.X = b.X[:out*l.imageSize]
	b.Labels = b.Labels[:out]
}
