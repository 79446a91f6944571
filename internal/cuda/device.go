//go:build cuda

package cuda

import (
	_ "embed"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"unsafe"

	"resnet/internal/backend"
)

// fatbin holds the kernels of kernels/*.cu, built by `make kernels` (see the package comment).
//
//go:embed kernels.fatbin
var fatbin []byte

func init() {
	backend.Register("cuda", func(opt backend.Options) (backend.Device, error) {
		d, err := Open(opt)
		if err != nil {
			return nil, err
		}
		return d, nil
	})
}

// Environment variables read by Open.
const (
	envDevice    = "RESNET_CUDA_DEVICE"       // the first GPU to use (default 0); Options.Ordinal counts from it
	envTF32      = "RESNET_CUDA_TF32"         // 1 lets cuDNN and cuBLAS use TF32 tensor cores for fp32
	envWorkspace = "RESNET_CUDA_WORKSPACE_MB" // cap on a convolution's cuDNN workspace (default 1024)
)

// blockSize is the thread count of every kernel launch (RN_BLOCK in kernels/common.cuh).
const blockSize = 256

// ---- commands and the owner goroutine -------------------------------------------------------------------

type cmdKind uint8

const (
	cmdLaunch     cmdKind = iota + 1 // a kernel on the compute stream
	cmdMemset                        // zero n bytes: cuMemsetD8Async on the compute stream
	cmdCopyDtoD                      // cuMemcpyDtoDAsync on the compute stream
	cmdCopyHtoD                      // cuMemcpyHtoDAsync from pinned memory on the compute stream
	cmdUpload                        // a host-to-device copy on the copy stream, ordered against compute
	cmdDownload                      // a device-to-host copy after the queued compute work; synchronous
	cmdSync                          // wait for both streams
	cmdWaitSlot                      // wait until a staging slot's last copy is done
	cmdConv                          // a cuDNN convolution on the compute stream
	cmdGemm                          // a cuBLAS SGEMM on the compute stream
	cmdFunc                          // run fn on the owner thread (setup work: allocation, algorithm search)
	cmdGraphCtl                      // run fn on the owner thread: begin, end or destroy a graph (graph.go)
	cmdGraph                         // launch the instantiated graph c.graph on the compute stream
	cmdCollective                    // an NCCL collective on the compute stream (nccl.go)
)

type gemmArgs struct {
	ta, tb        int32
	m, n, k       int32
	a, b, c       uint64
	lda, ldb, ldc int32
	beta          float32
}

type convArgs struct {
	dir     convDir
	plan    *convPlan
	algo    *convAlgo
	x, w, y uint64
	ws      uint64
	wsBytes int64
	beta    float32
}

// cmd is one unit of work for the owner goroutine. Commands are copied into the queue by value, so a
// steady-state op allocates nothing.
type cmd struct {
	kind   cmdKind
	op     string // the Device method that queued it, for errors
	seq    uint64 // position in the queue, assigned by push
	kernel kernelID
	nargs  int32
	grid   [3]uint32
	args   [maxKernelArgs]uint64
	dst    uint64
	src    uint64
	host   unsafe.Pointer // pinned host memory (C memory)
	n      int64          // bytes
	slot   int            // staging slot of an upload, -1 for none
	wait   bool
	gemm   gemmArgs
	conv   convArgs
	fn     func(gpu) error
	graph  uint64     // the graph of cmdGraph
	coll   collArgs   // the collective of cmdCollective
	done   chan error // set for synchronous commands: the owner sends the result
}

// queue hands commands from the calling goroutines to the owner. The owner takes everything pending at
// once, runs it, and comes back; when the queue stays empty it spins briefly (a launch is a few µs, a
// goroutine wake-up on a locked thread tens of µs) and then parks until a push wakes it.
type queue struct {
	mu      sync.Mutex
	pending []cmd
	spare   []cmd
	seq     uint64
	idle    bool // the owner is parked (or about to be) waiting on wake
	closed  bool
	wake    chan struct{}
	count   atomic.Int32 // len(pending), read by the spinning owner without the lock
}

// ownerSpin is how many empty polls the owner makes before parking (tens of µs).
const ownerSpin = 1 << 15

func (q *queue) init() {
	q.pending = make([]cmd, 0, 256)
	q.spare = make([]cmd, 0, 256)
	q.wake = make(chan struct{}, 1)
}

// push appends c and returns its sequence number.
func (q *queue) push(c *cmd) uint64 {
	q.mu.Lock()
	q.seq++
	c.seq = q.seq
	q.pending = append(q.pending, *c)
	q.count.Store(int32(len(q.pending)))
	wake := q.idle
	q.idle = false
	q.mu.Unlock()
	if wake {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return c.seq
}

// take returns the next batch of commands, or quit once the queue is closed and drained.
func (q *queue) take() (batch []cmd, quit bool) {
	for spins := 0; ; spins++ {
		if q.count.Load() == 0 && spins < ownerSpin {
			continue
		}
		q.mu.Lock()
		if len(q.pending) > 0 {
			batch = q.pending
			q.pending, q.spare = q.spare[:0], nil
			q.count.Store(0)
			q.mu.Unlock()
			return batch, false
		}
		if q.closed {
			q.mu.Unlock()
			return nil, true
		}
		q.idle = true
		q.mu.Unlock()
		<-q.wake
		spins = 0
	}
}

// recycle gives a finished batch back as the next spare buffer.
func (q *queue) recycle(batch []cmd) {
	clear(batch) // drop references (closures, plans, channels)
	q.mu.Lock()
	if q.spare == nil {
		q.spare = batch[:0]
	}
	q.mu.Unlock()
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	wake := q.idle
	q.idle = false
	q.mu.Unlock()
	if wake {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// ---- the device -----------------------------------------------------------------------------------------

// Device is the CUDA backend: float32 (and int32 label) NCHW tensors in device memory, 4-D activations in
// the format of ActivationFormat, convolutions on cuDNN, GEMMs on cuBLAS, everything else on the kernels of kernels/*.cu.
//
// One goroutine, locked to its OS thread, owns the CUDA context, both streams and the library handles.
// The methods validate their operands on the calling goroutine and queue commands for it; kernel launches
// and library calls return as soon as they are queued (errors they hit on the GPU side are reported by the
// next method call, with the op that caused them), while Download, Sync and the one-off setup work (device
// allocations, algorithm searches) wait for the owner. The methods may be called from any goroutine; they
// are serialised, and their GPU work runs in call order on one compute stream.
type Device struct {
	opt     backend.Options
	tf32    bool
	wsLimit int64 // cap on one convolution's cuDNN workspace
	info    deviceInfo

	q       queue
	g       gpu // the driver side; touched only by the owner goroutine
	stopped chan struct{}

	opMu     sync.Mutex // serialises the methods below
	closed   bool
	syncDone chan error // answer channel of synchronous commands (one in flight, under opMu)
	pack     argPack    // the launch being built

	errMu    sync.Mutex
	asyncErr error
	hasErr   atomic.Bool
	doneSeq  atomic.Uint64 // every command up to this sequence number has completed on the GPU

	mem    *allocator
	rawMu  sync.Mutex
	rawLiv map[uint64]bool // device blocks obtained from the driver, freed by Close

	stage     [stageSlots]staging
	stageNext int
	down      staging
	pinned    []pinnedRegion   // from PinnedFloat32s
	hostOwned []unsafe.Pointer // other pinned memory of the device (SGD tables), freed by Close

	counters  block // zeroed uint32 per channel for the fused reductions' last-block election
	flags     block // int32 per tensor of a FindNonFinite check
	workspace block // cuDNN workspace
	// syncBlk holds the tensor a synchronised batch norm exchanges, syncBuf that tensor's storage
	// (batchnorm_sync.go).
	syncBlk   block
	syncBuf   *buffer
	convPlans map[convGeom]*convPlan
	// filterBufs are the buffers holding weights with converted copies (filters.go).
	filterBufs map[*buffer]struct{}
	sgd        sgdState
	scratch    [4]block // per-op scratch, freed at the end of the op (stream order keeps it safe)

	// convChoices are the algorithms chosen so far, for ConvAlgorithms, and nccl the version of the NCCL
	// library of the groups the device joined (under reportMu).
	reportMu    sync.Mutex
	convChoices []backend.ConvChoice
	nccl        string

	launches [int(numKernels) + int(numLibCalls)]atomic.Int64

	graphState // the recorded graphs and the memory they hold (graph.go), under opMu

	// comms are the collective groups joined and not yet closed, by their id (nccl.go), under opMu.
	comms    map[uint64]*collectives
	lastComm uint64
}

// staging is a pinned host buffer that uploads or downloads pass through.
type staging struct {
	host  unsafe.Pointer
	bytes int64
	seq   uint64 // the command that last copied out of it
}

type pinnedRegion struct {
	start unsafe.Pointer
	bytes int64
}

// block is a piece of device memory from the allocator.
type block struct {
	ptr   uint64
	class int64
}

// buffer is the storage behind a CUDA tensor.
type buffer struct {
	dev   *Device
	blk   block
	n     int
	dt    backend.DType
	freed bool
	// filters are the converted copies of convolution weights in this buffer (filters.go).
	filters []*filterCopy
}

// Len implements backend.Buffer.
func (b *buffer) Len() int { return b.n }

// DType implements backend.Buffer.
func (b *buffer) DType() backend.DType { return b.dt }

// Freed implements backend.Buffer.
func (b *buffer) Freed() bool { return b.freed }

// gpu is what the device needs from the CUDA side: the driver type (cgo.go) in real use, a CPU
// emulation of the kernels in the kernelemu tests. Only the owner goroutine calls it.
type gpu interface {
	exec(c *cmd) error // cmdGraph included
	// graphBegin starts recording the compute stream's work instead of running it; graphEnd stops and,
	// with keep, makes the recording graph id, ready to launch (else discards it); graphDestroy frees
	// graph id (a launch still running finishes first).
	graphBegin() error
	graphEnd(id uint64, keep bool) error
	graphDestroy(id uint64) error
	memAlloc(bytes int64) (uint64, error)
	memFree(blocks []uint64) error // after waiting for the device
	hostAlloc(bytes int64) (unsafe.Pointer, error)
	hostFree(p unsafe.Pointer) error // after waiting for the device
	memInfo() (free, total int64, err error)
	newConvPlan(g convGeom) (*convPlan, error)
	// convCandidates lists cuDNN's algorithms for a direction, best first: by its heuristics, or with timed
	// set by timing them on the operands x, w, y (see algo.go).
	convCandidates(p *convPlan, dir convDir, timed bool, x, w, y uint64, wsLimit int64) ([]convCandidate, error)
	newConvAlgo(p *convPlan, dir convDir, c convCandidate) (*convAlgo, error)
	destroyConvPlan(p *convPlan)
	// collectiveID makes the id of a new collective group; joinCollectives makes communicator comm, rank
	// of world in the group id names; leaveCollectives destroys it (with abort, without waiting for its
	// collectives). cmdCollective runs a collective (nccl.go).
	collectiveID() ([]byte, error)
	joinCollectives(comm uint64, id []byte, rank, world int) error
	leaveCollectives(comm uint64, abort bool) error
	close()
}

// openHook, when set (by the kernel emulator tests), replaces how Open reaches a GPU.
var openHook func(opt backend.Options) (*Device, error)

// Open opens GPU opt.Ordinal, counted from the one RESNET_CUDA_DEVICE names (default 0). It fails with a
// message saying what is missing when there is no driver, no such GPU, or no cuDNN/cuBLAS.
func Open(opt backend.Options) (*Device, error) {
	if openHook != nil {
		return openHook(opt)
	}
	if err := loadDriver(); err != nil {
		return nil, err
	}
	ordinal, named, err := deviceOrdinal(opt.Ordinal, os.Getenv(envDevice))
	if err != nil {
		return nil, err
	}
	d, err := newDevice(opt)
	if err != nil {
		return nil, err
	}
	err = d.start(func() (gpu, deviceInfo, error) {
		dr := &driver{}
		info, err := dr.open(ordinal, named, d.tf32, fatbin)
		info.nvidiaDriver = nvidiaDriverRelease()
		return dr, info, err
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// deviceOrdinal is the GPU a device opens: ordinal (backend.Options.Ordinal, a data-parallel worker's
// local rank) counted from the GPU env (RESNET_CUDA_DEVICE, empty for 0) names, so that the workers of a
// job started with RESNET_CUDA_DEVICE=2 use GPUs 2, 3 and so on. named says where the number came from, for
// the error of a GPU the machine does not have.
func deviceOrdinal(ordinal int, env string) (gpuOrdinal int, named string, err error) {
	if ordinal < 0 {
		return 0, "", fmt.Errorf("cuda: device ordinal %d is negative", ordinal)
	}
	first := 0
	if env != "" {
		v, err := strconv.Atoi(env)
		if err != nil || v < 0 {
			return 0, "", fmt.Errorf("cuda: %s=%q is not a device ordinal (0, 1, ...)", envDevice, env)
		}
		first = v
	}
	switch {
	case env == "":
		named = fmt.Sprintf("GPU %d", ordinal)
	case ordinal == 0:
		named = fmt.Sprintf("GPU %d (%s=%s)", first, envDevice, env)
	default:
		named = fmt.Sprintf("GPU %d (%s=%s plus device ordinal %d)", first+ordinal, envDevice, env, ordinal)
	}
	return first + ordinal, named, nil
}

// newDevice makes a device that is not started yet, reading the environment's settings.
func newDevice(opt backend.Options) (*Device, error) {
	d := &Device{
		opt:        opt,
		tf32:       os.Getenv(envTF32) == "1",
		wsLimit:    1 << 30,
		stopped:    make(chan struct{}),
		syncDone:   make(chan error, 1),
		rawLiv:     map[uint64]bool{},
		convPlans:  map[convGeom]*convPlan{},
		filterBufs: map[*buffer]struct{}{},
	}
	if s := os.Getenv(envWorkspace); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("cuda: %s=%q is not a size in MiB", envWorkspace, s)
		}
		d.wsLimit = int64(v) << 20
	}
	d.q.init()
	d.pack.d = d
	d.mem = newAllocator(d.rawAlloc, d.rawRelease)
	return d, nil
}

// start runs the owner goroutine, which opens the GPU side with open on its locked thread.
func (d *Device) start(open func() (gpu, deviceInfo, error)) error {
	ready := make(chan error, 1)
	go d.own(open, ready)
	if err := <-ready; err != nil {
		return err
	}
	// Leave room for the activations: a workspace never takes more than an eighth of the free memory.
	d.wsLimit = min(d.wsLimit, max(d.info.freeMem/8, 64<<20))
	return nil
}

// own is the owner goroutine: it opens the GPU side on its locked thread, then runs commands until
// Close. The thread stays locked, so it exits with the goroutine and nothing else ever runs on it.
func (d *Device) own(open func() (gpu, deviceInfo, error), ready chan<- error) {
	runtime.LockOSThread()
	g, info, err := open()
	if err != nil {
		ready <- err
		return
	}
	d.g, d.info = g, info
	ready <- nil
	for {
		batch, quit := d.q.take()
		if quit {
			break
		}
		for i := range batch {
			c := &batch[i]
			err := d.g.exec(c)
			if err == nil && (c.kind == cmdSync || c.kind == cmdDownload) {
				d.doneSeq.Store(c.seq)
			}
			if c.done != nil {
				c.done <- err
			} else if err != nil {
				d.setAsyncErr(c.op, err)
			}
		}
		d.q.recycle(batch)
	}
	d.g.close()
	close(d.stopped)
}

// setAsyncErr keeps the first error of a queued command for the next method call to return.
func (d *Device) setAsyncErr(op string, err error) {
	if e, ok := err.(*Error); ok {
		err = e.withOp(op)
	}
	d.errMu.Lock()
	if d.asyncErr == nil {
		d.asyncErr = err
		d.hasErr.Store(true)
	}
	d.errMu.Unlock()
}

// begin starts a method: it takes the method lock and returns (and clears) an error left by earlier
// queued work. Every method calls it first and end when done.
func (d *Device) begin(op string) error {
	d.opMu.Lock()
	if d.closed {
		return fmt.Errorf("cuda: %s: the device is closed", op)
	}
	if err := d.takeAsyncErr(); err != nil {
		return fmt.Errorf("%w (reported by %s, the next call after the failed one)", err, op)
	}
	return nil
}

// takeAsyncErr returns and clears the error queued work left.
func (d *Device) takeAsyncErr() error {
	if !d.hasErr.Load() {
		return nil
	}
	d.errMu.Lock()
	defer d.errMu.Unlock()
	err := d.asyncErr
	d.asyncErr = nil
	d.hasErr.Store(false)
	return err
}

func (d *Device) end() {
	d.noteScratch()
	for i := range d.scratch {
		d.release(d.scratch[i])
		d.scratch[i] = block{}
	}
	d.opMu.Unlock()
}

// enqueue queues an asynchronous command. While a graph is being captured, a command that cannot be part
// of one is dropped, and the capture fails with its error (graph.go).
func (d *Device) enqueue(c *cmd) uint64 {
	if d.capturing != nil && d.refused(c) != nil {
		return 0
	}
	return d.q.push(c)
}

// call queues a synchronous command and waits for its result. d.opMu is held.
func (d *Device) call(c *cmd) error {
	if d.capturing != nil {
		if err := d.refused(c); err != nil {
			return err
		}
	}
	c.done = d.syncDone
	d.q.push(c)
	err := <-d.syncDone
	if e, ok := err.(*Error); ok {
		return e.withOp(c.op)
	}
	return err
}

// onOwner runs fn on the owner thread and waits for it.
func (d *Device) onOwner(op string, fn func(gpu) error) error {
	return d.call(&cmd{kind: cmdFunc, op: op, fn: fn})
}

// rawAlloc and rawRelease are the allocator's access to the driver (called with d.opMu held).
func (d *Device) rawAlloc(bytes int64) (uint64, error) {
	var p uint64
	err := d.onOwner("", func(dr gpu) error {
		var err error
		p, err = dr.memAlloc(bytes)
		return err
	})
	if err != nil {
		return 0, err
	}
	d.rawMu.Lock()
	d.rawLiv[p] = true
	d.rawMu.Unlock()
	return p, nil
}

func (d *Device) rawRelease(blocks []uint64) error {
	err := d.onOwner("", func(dr gpu) error { return dr.memFree(blocks) })
	d.rawMu.Lock()
	for _, b := range blocks {
		delete(d.rawLiv, b)
	}
	d.rawMu.Unlock()
	return err
}

// alloc returns a device block of at least bytes bytes, attributing errors to op. While a graph is
// being captured the block comes from memory the capture may use (graph.go).
func (d *Device) alloc(op string, bytes int64) (block, error) {
	if d.capturing != nil {
		return d.captureAlloc(op, bytes)
	}
	p, class, err := d.mem.alloc(bytes)
	if err != nil {
		if e, ok := err.(*Error); ok {
			return block{}, e.withOp(op)
		}
		return block{}, err
	}
	return d.handOut(block{p, class}), nil
}

// tempAlloc returns scratch memory that is handed back when the current method ends; kernels queued by
// the method may use it (a later op that gets the block queues its work behind them).
func (d *Device) tempAlloc(op string, bytes int64) (uint64, error) {
	for i := range d.scratch {
		if d.scratch[i].class == 0 {
			b, err := d.alloc(op, bytes)
			if err != nil {
				return 0, err
			}
			d.scratch[i] = b
			d.countScratch(b)
			return b.ptr, nil
		}
	}
	return 0, fmt.Errorf("cuda: %s: internal error: more than %d scratch buffers", op, len(d.scratch))
}

// grow makes b at least bytes long (its contents are not kept). The old block goes back to the
// allocator: work queued on it stays ahead of any new user.
func (d *Device) grow(op string, b *block, bytes int64) error {
	if b.class >= bytes {
		return nil
	}
	nb, err := d.alloc(op, bytes)
	if err != nil {
		return err
	}
	d.release(*b)
	*b = nb
	return nil
}

// Close waits for the queued work, frees every device and pinned allocation the device made, aborts the
// collective groups it has not left, and stops its owner goroutine. Tensors of a closed device must not be used; methods return an error.
func (d *Device) Close() error {
	d.opMu.Lock()
	if d.closed {
		d.opMu.Unlock()
		return nil
	}
	err := d.call(&cmd{kind: cmdSync, op: "Close"})
	if e := d.destroyGraphs(); e != nil && err == nil {
		err = e
	}
	d.rawMu.Lock()
	var blocks []uint64
	for p := range d.rawLiv {
		blocks = append(blocks, p)
	}
	d.rawLiv = map[uint64]bool{}
	d.rawMu.Unlock()
	var hosts []unsafe.Pointer
	for _, s := range append(d.stage[:], d.down) {
		if s.host != nil {
			hosts = append(hosts, s.host)
		}
	}
	for _, r := range d.pinned {
		hosts = append(hosts, r.start)
	}
	hosts = append(hosts, d.hostOwned...)
	plans := d.convPlans
	var comms []uint64
	for id, c := range d.comms {
		c.closed = true
		comms = append(comms, id)
	}
	d.comms = nil
	for b := range d.filterBufs {
		b.filters = nil // their memory is in blocks, freed below
	}
	d.filterBufs = nil
	if e := d.onOwner("Close", func(dr gpu) error {
		// Groups left open are aborted: their collectives have finished (the sync above), and a peer that
		// still expects more cannot be served by a closed device.
		for _, id := range comms {
			dr.leaveCollectives(id, true) //nolint:errcheck // closing anyway
		}
		err := dr.memFree(blocks)
		for _, h := range hosts {
			if e := dr.hostFree(h); e != nil && err == nil {
				err = e
			}
		}
		for _, p := range plans {
			dr.destroyConvPlan(p)
		}
		return err
	}); e != nil && err == nil {
		err = e
	}
	d.closed = true
	d.q.close()
	d.opMu.Unlock()
	<-d.stopped
	return err
}

// ---- informational methods ------------------------------------------------------------------------------

// Name implements backend.Device.
func (d *Device) Name() string { return "cuda" }

// Describe names the GPU and the library versions in use (NCCL's once the device joined a group).
func (d *Device) Describe() string {
	i := d.info
	math := "fp32"
	if d.tf32 {
		math = "tf32"
	}
	nccl := ""
	if v := d.ncclVersion(); v != "" {
		nccl = ", NCCL " + v
	}
	return fmt.Sprintf("%s (device %d, sm_%d%d, %d SMs, %.1f GiB, driver %d.%d, cuDNN %d.%d.%d, %s%s, %s)",
		i.name, i.ordinal, i.major, i.minor, i.sms, float64(i.totalMem)/(1<<30), i.driverVersion/1000,
		i.driverVersion%1000/10, i.cudnnVersion/10000, i.cudnnVersion%10000/100, i.cudnnVersion%100, i.cublasLib,
		nccl, math)
}

// PeakBytes is the most device memory the device's tensors and scratch buffers held at once.
func (d *Device) PeakBytes() int64 { return d.mem.snapshot().PeakInUse }

// FreeMemory implements backend.MemoryReporter: the device's free memory (cuMemGetInfo) plus the blocks
// the allocator keeps for reuse.
func (d *Device) FreeMemory() (int64, error) {
	const op = "FreeMemory"
	if err := d.begin(op); err != nil {
		d.end()
		return 0, err
	}
	defer d.end()
	var free int64
	err := d.onOwner(op, func(dr gpu) error {
		var err error
		free, _, err = dr.memInfo()
		return err
	})
	st := d.mem.snapshot()
	return free + st.Reserved - st.InUse, err
}

// MemStats returns the allocator's figures.
func (d *Device) MemStats() MemStats { return d.mem.snapshot() }

// ResetPeakBytes sets the peaks of MemStats to the current figures.
func (d *Device) ResetPeakBytes() { d.mem.resetPeaks() }

// LaunchCounts returns how many times each kernel (by its name in kernels/*.cu, listed in kernels.go)
// and each counted library call (cudnnConvolutionForward, cudnnConvolutionBackwardData,
// cudnnConvolutionBackwardFilter, cublasSgemm, and cuGraphLaunch, whose replayed work is not counted
// again) was queued since the device was opened or the counts were
// reset. Only non-zero counts are present. The map is a copy.
func (d *Device) LaunchCounts() map[string]int64 {
	out := map[string]int64{}
	for i := range d.launches {
		if n := d.launches[i].Load(); n != 0 {
			out[launchName(i)] = n
		}
	}
	return out
}

// ResetLaunchCounts sets every launch count to zero.
func (d *Device) ResetLaunchCounts() {
	for i := range d.launches {
		d.launches[i].Store(0)
	}
}

func launchName(i int) string {
	if i < int(numKernels) {
		return kernelTable[i].name
	}
	return libCallNames[i-int(numKernels)]
}

func (d *Device) countLib(c libCall) { d.launches[int(numKernels)+int(c)].Add(1) }

// ---- memory ---------------------------------------------------------------------------------------------

// Alloc implements backend.Device.
func (d *Device) Alloc(shape backend.Shape, dt backend.DType, layout backend.Layout) (backend.Tensor, error) {
	const op = "Alloc"
	if err := backend.CheckAlloc(shape, dt, layout, d.opt.Precision, d.opt.Layout); err != nil {
		return backend.Tensor{}, named(err)
	}
	if err := d.begin(op); err != nil {
		d.end()
		return backend.Tensor{}, err
	}
	defer d.end()
	n := shape.Numel()
	bytes := int64(dt.Size()) * int64(n)
	b, err := d.alloc(op, bytes)
	if err != nil {
		return backend.Tensor{}, err
	}
	if n > 0 {
		d.enqueue(&cmd{kind: cmdMemset, op: op, dst: b.ptr, n: bytes})
	}
	buf := &buffer{dev: d, blk: b, n: n, dt: dt}
	return backend.Tensor{Shape: append(backend.Shape(nil), shape...), DType: dt, Layout: layout, Buf: buf}, nil
}

// Free implements backend.Device. The storage returns to the device's cache; later use of any view of it
// is an error. Freeing twice, or a tensor of another device, does nothing.
func (d *Device) Free(t backend.Tensor) {
	b, ok := t.Buf.(*buffer)
	if !ok || b.dev != d {
		return
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	if b.freed || d.closed {
		return
	}
	b.freed = true
	d.dropFilterCopies(b)
	d.release(b.blk)
}

// ActivationFormat implements backend.ActivationFormatter: the dtype and layout of Options.Precision and
// Options.Layout.
func (d *Device) ActivationFormat() (backend.DType, backend.Layout) {
	return d.opt.Precision, d.opt.Layout
}

// Upload implements backend.Device. src is float32 in (N, C, H, W) order; a tensor of another dtype or
// layout gets it through f32 scratch on the device, converted there by an activation_to kernel (round to
// nearest even), so that the host does no per-element work.
func (d *Device) Upload(dst backend.Tensor, src []float32) error {
	var p unsafe.Pointer
	if len(src) > 0 {
		p = unsafe.Pointer(&src[0])
	}
	return d.upload("Upload", dst, func() error { return backend.CheckUpload(dst, src) }, p, len(src))
}

// UploadInt32 implements backend.Device.
func (d *Device) UploadInt32(dst backend.Tensor, src []int32) error {
	var p unsafe.Pointer
	if len(src) > 0 {
		p = unsafe.Pointer(&src[0])
	}
	return d.upload("UploadInt32", dst, func() error { return backend.CheckUploadInt32(dst, src) }, p, len(src))
}

// upload copies n 4-byte values at src into dst, once check has passed them; into a tensor of another
// format, into f32 scratch that a convert kernel then reads. A source inside memory from PinnedFloat32s is
// copied straight from there, and the call returns when the copy is done (the caller may reuse the memory
// at once). Any other source is first copied into a pinned staging buffer, and the device copy runs
// asynchronously on the copy stream; the compute work queued later waits for it.
func (d *Device) upload(op string, dst backend.Tensor, check func() error, src unsafe.Pointer, n int) error {
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	a := addrs{d: d, op: op, err: named(check())}
	ptr := a.of("dst", dst)
	if a.err != nil || n == 0 {
		return a.err
	}
	bytes := 4 * int64(n)
	conv, converted := activationKernels[filterFormat{dst.DType, dst.Layout}]
	to := ptr
	if converted {
		var err error
		if to, err = d.tempAlloc(op, bytes); err != nil {
			return err
		}
	}
	if d.isPinned(src, bytes) {
		if err := d.call(&cmd{kind: cmdUpload, op: op, dst: to, host: src, n: bytes, slot: -1, wait: true}); err != nil {
			return err
		}
	} else if err := d.stageUpload(op, to, src, bytes); err != nil {
		return err
	}
	if !converted {
		return nil
	}
	_, c, h, w := dst.NCHW()
	return d.convert(op, conv.to, to, ptr, c, h*w, int64(n))
}

// stageUpload copies bytes bytes at src into the next pinned staging buffer and queues their copy
// to ptr on the copy stream.
func (d *Device) stageUpload(op string, ptr uint64, src unsafe.Pointer, bytes int64) error {
	if d.capturing != nil {
		return d.refused(&cmd{kind: cmdUpload, op: op})
	}
	i := d.stageNext
	d.stageNext = (d.stageNext + 1) % stageSlots
	s := &d.stage[i]
	if s.seq > d.doneSeq.Load() {
		// Its last copy may still be running.
		if err := d.call(&cmd{kind: cmdWaitSlot, op: op, slot: i}); err != nil {
			return err
		}
	}
	if err := d.growStaging(op, s, bytes); err != nil {
		return err
	}
	copy(unsafe.Slice((*byte)(s.host), bytes), unsafe.Slice((*byte)(src), bytes))
	s.seq = d.enqueue(&cmd{kind: cmdUpload, op: op, dst: ptr, host: s.host, n: bytes, slot: i})
	return nil
}

// growStaging makes a staging buffer at least bytes long (it must be idle).
func (d *Device) growStaging(op string, s *staging, bytes int64) error {
	if s.bytes >= bytes {
		return nil
	}
	size := max(bytes, 1<<20)
	old := s.host
	var p unsafe.Pointer
	err := d.onOwner(op, func(dr gpu) error {
		if old != nil {
			if err := dr.hostFree(old); err != nil {
				return err
			}
		}
		var err error
		p, err = dr.hostAlloc(size)
		return err
	})
	s.host, s.bytes = nil, 0
	if err != nil {
		return err
	}
	s.host, s.bytes = p, size
	return nil
}

func (d *Device) isPinned(p unsafe.Pointer, bytes int64) bool {
	for _, r := range d.pinned {
		off := uintptr(p) - uintptr(r.start)
		if uintptr(p) >= uintptr(r.start) && int64(off)+bytes <= r.bytes {
			return true
		}
	}
	return false
}

// Download implements backend.Device: it waits for the queued work that produces src.
func (d *Device) Download(dst []float32, src backend.Tensor) error {
	const op = "Download"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	a := addrs{d: d, op: op, err: named(backend.CheckDownload(dst, src))}
	ptr := a.in("src", src)
	if a.err != nil || len(dst) == 0 {
		return a.err
	}
	bytes := 4 * int64(len(dst))
	if conv, ok := activationKernels[filterFormat{src.DType, src.Layout}]; ok {
		// Another format: an activation_from kernel writes the f32 NCHW values into scratch first.
		scratch, err := d.tempAlloc(op, bytes)
		if err != nil {
			return err
		}
		_, c, h, w := src.NCHW()
		if err := d.convert(op, conv.from, ptr, scratch, c, h*w, int64(len(dst))); err != nil {
			return err
		}
		ptr = scratch
	}
	if err := d.growStaging(op, &d.down, bytes); err != nil {
		return err
	}
	if err := d.call(&cmd{kind: cmdDownload, op: op, src: ptr, host: d.down.host, n: bytes}); err != nil {
		return err
	}
	copy(dst, unsafe.Slice((*float32)(d.down.host), len(dst)))
	return nil
}

// PinnedFloat32s returns n float32 values of page-locked host memory, which the device copies from
// without staging (use it as dataset.LoaderOptions.Staging). It stays valid until Close. If pinned
// memory cannot be had, an ordinary slice is returned.
func (d *Device) PinnedFloat32s(n int) []float32 {
	if n <= 0 {
		return []float32{}
	}
	// Not begin: an error left by queued work is for the next op to report, not for this one to swallow.
	d.opMu.Lock()
	defer d.opMu.Unlock()
	if d.closed {
		return make([]float32, n)
	}
	bytes := 4 * int64(n)
	var p unsafe.Pointer
	err := d.onOwner("PinnedFloat32s", func(dr gpu) error {
		var err error
		p, err = dr.hostAlloc(bytes)
		return err
	})
	if err != nil || p == nil {
		return make([]float32, n)
	}
	d.pinned = append(d.pinned, pinnedRegion{p, bytes})
	s := unsafe.Slice((*float32)(p), n)
	clear(s)
	return s
}

// FreePinned releases memory from PinnedFloat32s (the whole allocation s starts). Memory that is not
// freed lives until Close. s must not be used afterwards; freeing something else does nothing.
func (d *Device) FreePinned(s []float32) {
	if len(s) == 0 {
		return
	}
	p := unsafe.Pointer(&s[0])
	d.opMu.Lock()
	defer d.opMu.Unlock()
	if d.closed {
		return
	}
	for i, r := range d.pinned {
		if r.start == p {
			d.pinned = append(d.pinned[:i], d.pinned[i+1:]...)
			// An error here leaves the memory pinned until the process ends; nothing else to do.
			_ = d.onOwner("FreePinned", func(g gpu) error { return g.hostFree(p) })
			return
		}
	}
}

// Zero implements backend.Device.
func (d *Device) Zero(t backend.Tensor) error {
	const op = "Zero"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	a := addrs{d: d, op: op, err: named(backend.CheckZero(t))}
	ptr := a.of("t", t)
	if n := t.Numel(); a.err == nil && n > 0 {
		d.enqueue(&cmd{kind: cmdMemset, op: op, dst: ptr, n: int64(t.DType.Size()) * int64(n)})
	}
	return a.err
}

// Copy implements backend.Device. The shapes may differ as long as the element counts and dtypes match.
func (d *Device) Copy(dst, src backend.Tensor) error {
	const op = "Copy"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	a := addrs{d: d, op: op, err: named(backend.CheckCopy(dst, src))}
	dp, sp := a.of("dst", dst), a.in("src", src)
	if n := src.Numel(); a.err == nil && n > 0 {
		d.enqueue(&cmd{kind: cmdCopyDtoD, op: op, dst: dp, src: sp, n: int64(src.DType.Size()) * int64(n)})
	}
	return a.err
}

// Sync implements backend.Device: it waits until all queued work has finished, and reports the first
// error that work hit.
func (d *Device) Sync() error {
	const op = "Sync"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	if err := d.call(&cmd{kind: cmdSync, op: op}); err != nil {
		return err
	}
	// Work queued before the sync may have failed after begin looked.
	return d.takeAsyncErr()
}

// ---- operands -------------------------------------------------------------------------------------------

// named puts the backend's name in front of an error of the operand checks in internal/backend.
func named(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("cuda: %w", err)
}

// addrs turns operands that passed the checks in internal/backend into device addresses. It keeps the
// first error, starting with that of the checks, so an op takes all its addresses, then looks.
type addrs struct {
	d   *Device
	op  string
	err error
}

// of returns the device address of t's first element after checking that this device allocated t, for an
// operand the op may write: the converted copies of weights t overlaps are stale from then on. Every op
// takes its operands through of unless it names them read-only (in), so a write nobody thought of still
// refreshes the copies.
func (a *addrs) of(name string, t backend.Tensor) uint64 {
	p := a.in(name, t)
	if a.err == nil {
		t.Buf.(*buffer).wrote(t.Off, t.Numel())
	}
	return p
}

// in is of for an operand the op only reads.
func (a *addrs) in(name string, t backend.Tensor) uint64 {
	if a.err != nil {
		return 0
	}
	b, ok := t.Buf.(*buffer)
	switch {
	case !ok:
		a.err = fmt.Errorf("cuda: %s: %s was allocated by another backend (%T)", a.op, name, t.Buf)
	case b.dev != a.d:
		a.err = fmt.Errorf("cuda: %s: %s was allocated by another CUDA device", a.op, name)
	default:
		return b.blk.ptr + uint64(t.DType.Size())*uint64(t.Off)
	}
	return 0
}
