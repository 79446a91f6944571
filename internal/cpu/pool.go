package cpu

import (
	"sync"
	"sync/atomic"
)

// task is one op's work, split into numbered pieces that can run in any order on any worker. Each piece
// writes only its own outputs (or its own slot of a partial-result buffer), so the result does not depend
// on which worker ran which piece: that is what keeps the device deterministic.
type task interface {
	// run does piece i on the given worker; worker indexes Device.ws and is in [0, workers).
	run(worker, i int)
}

// pool is a fixed set of helper goroutines that run the pieces of one task at a time, together with the
// calling goroutine (worker 0). Tasks are passed as pointers to job structs that live in the Device, and
// the helpers are woken through a buffered channel, so running a task allocates nothing.
type pool struct {
	helpers int
	wake    chan struct{}
	quit    chan struct{}
	done    sync.WaitGroup
	once    sync.Once
	closed  atomic.Bool

	// The current task; written by run before the helpers are woken, read by them after.
	t    task
	n    int64
	next atomic.Int64
}

func newPool(workers int) *pool {
	p := &pool{
		helpers: workers - 1,
		wake:    make(chan struct{}, workers),
		quit:    make(chan struct{}),
	}
	for id := 1; id < workers; id++ {
		go p.helper(id)
	}
	return p
}

func (p *pool) helper(id int) {
	for {
		select {
		case <-p.wake:
			p.drain(id)
			p.done.Done()
		case <-p.quit:
			return
		}
	}
}

// drain runs pieces of the current task until none is left.
func (p *pool) drain(worker int) {
	t, n := p.t, p.n
	for {
		i := p.next.Add(1) - 1
		if i >= n {
			return
		}
		t.run(worker, int(i))
	}
}

// run executes pieces [0, n) of t and returns when all are done.
func (p *pool) run(t task, n int) {
	if n <= 0 {
		return
	}
	if p.helpers == 0 || n == 1 || p.closed.Load() {
		for i := 0; i < n; i++ {
			t.run(0, i)
		}
		return
	}
	p.t, p.n = t, int64(n)
	p.next.Store(0)
	k := min(p.helpers, n-1)
	p.done.Add(k)
	for i := 0; i < k; i++ {
		p.wake <- struct{}{}
	}
	p.drain(0)
	p.done.Wait()
	p.t = nil // do not keep the job (and through it the Device) reachable from the helpers
}

// close stops the helpers; later runs execute on the caller. It is safe to call more than once.
func (p *pool) close() {
	p.once.Do(func() {
		p.closed.Store(true)
		close(p.quit)
	})
}

// jobs holds one job struct per op family. An op fills its job, runs it on the pool and clears it, so
// passing the job to the pool allocates nothing.
type jobs struct {
	gemm gemmJob
	conv convJob
	bn   bnJob
	pool poolJob
	ce   ceJob
	sgd  sgdJob
	find findJob

	residual residualJob
	gate     gateJob
	dropout  dropoutJob
	scaled   scaledJob
}

// workspace is the scratch memory of one worker, grown on demand and kept for the device's lifetime.
type workspace struct {
	gemm gemmScratch
	col  []float32 // patch-gradient matrix of one image (strided backward data)
	// A stride-1 convolution of one image with the shifted kernels (convJob.shifted): the zero-padded
	// image, the patch rows' offsets into it, and the padded-width result.
	xpad, cbuf []float32
	offs       []int
	// The weights of the current call packed for the shifted kernel (convJob.packShifted).
	wpack    []float32
	wpackKey shiftedKey
	// The 3x3 weight gradient read in place (convJob.filterShifted): the output gradient's panels and the
	// transposed gradient of a batch chunk.
	fpanel, ftile []float32
	// The weights of the current call packed for the GEMM (convJob.packedWeights).
	apack    []float32
	apackKey shiftedKey
}

// scratchFloats is the number of float32 scratch buffers of a workspace.
const scratchFloats = 11

// floats lists the float32 scratch buffers of ws.
func (ws *workspace) floats() [scratchFloats]*[]float32 {
	return [...]*[]float32{&ws.gemm.packA, &ws.gemm.packB, &ws.gemm.tile, &ws.gemm.rows, &ws.col, &ws.xpad, &ws.cbuf,
		&ws.wpack, &ws.fpanel, &ws.ftile, &ws.apack}
}

// runSharingScratch runs a task whose pieces use the workers' scratch, then grows every worker's scratch to
// the largest any worker holds. Which worker gets which piece is up to the scheduler, so without this a
// worker that got no piece of the largest convolution in the first steps would allocate many steps later;
// with it, a training step allocates nothing once one step has run every op.
func (d *Device) runSharingScratch(t task, n int) {
	d.pool.run(t, n)
	if len(d.ws) < 2 {
		return
	}
	var floats [scratchFloats]int
	var offs, patches int
	for _, ws := range d.ws {
		for i, b := range ws.floats() {
			floats[i] = max(floats[i], cap(*b))
		}
		offs, patches = max(offs, cap(ws.offs)), max(patches, cap(ws.gemm.patches))
	}
	for _, ws := range d.ws {
		for i, b := range ws.floats() {
			*b = reserve(*b, floats[i])
		}
		ws.offs, ws.gemm.patches = reserve(ws.offs, offs), reserve(ws.gemm.patches, patches)
	}
}

// reserve returns s with a capacity of at least n, its length and contents kept.
func reserve[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s
	}
	r := make([]T, len(s), n)
	copy(r, s)
	return r
}

// split returns the bounds of part i when [0, n) is cut into parts pieces of near-equal size. The
// partition depends only on n and parts, never on the worker count.
func split(n, parts, i int) (lo, hi int) {
	return i * n / parts, (i + 1) * n / parts
}

// ceilDiv is ceil(a/b) for b > 0 and any sign of a.
func ceilDiv(a, b int) int {
	if a >= 0 {
		return (a + b - 1) / b
	}
	return -((-a) / b)
}

// floorDiv is floor(a/b) for b > 0 and any sign of a.
func floorDiv(a, b int) int {
	if a >= 0 {
		return a / b
	}
	return -((-a + b - 1) / b)
}
