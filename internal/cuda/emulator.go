//go:build cuda && kernelemu

package cuda

// The kernel emulator: with -tags 'cuda kernelemu' (needs g++ with C++20), Open returns a Device whose GPU
// side runs on the CPU. The kernels of kernels/*.cu are compiled as C++ by emulator.cpp and run block after
// block, each block's 256 threads as fibers that synchronise like real ones; device memory is host memory;
// naive GEMM and convolution stand in for cuBLAS and cuDNN. Everything else — the launchers, argument
// packing, the command queue, the allocator, staging and the fused/unfused paths — is the production
// code. It is for testing on machines without a GPU:
//
//	go test -tags 'cuda kernelemu' ./internal/cuda/
//
// It says nothing about speed, and it cannot show races between streams or blocks.

/*
#cgo CXXFLAGS: -std=c++20 -O2 -Wno-unused-function
#include <stdint.h>
#include <stdlib.h>

int emu_launch(const char* name, int gx, int gy, const uint64_t* args, int nargs);
int emu_kernel_count(void);
uint64_t emu_alloc(int64_t bytes);
void emu_free(uint64_t p);
void emu_memset0(uint64_t dst, int64_t n);
void emu_memcpy(uint64_t dst, uint64_t src, int64_t n);
void emu_sgemm(int ta, int tb, int m, int n, int k, uint64_t a, int lda, uint64_t b, int ldb, float beta, uint64_t c, int ldc);
void emu_conv(int dir, int dtype, int nhwc, int N, int Cin, int H, int W, int Cout, int KH, int KW, int stride,
              int pad_h, int pad_w, int OH, int OW, int groups, uint64_t x, uint64_t w, uint64_t y, float beta);
*/
import "C"

import (
	"fmt"
	"slices"
	"unsafe"

	"resnet/internal/backend"
)

func init() {
	openHook = func(opt backend.Options) (*Device, error) {
		d, err := newDevice(opt)
		if err != nil {
			return nil, err
		}
		err = d.start(func() (gpu, deviceInfo, error) {
			return &emuGPU{}, deviceInfo{
				name: "kernel emulator", major: 9, sms: 2, maxGridX: 1<<31 - 1, maxGridY: 65535,
				freeMem: emuMemory, totalMem: emuMemory, cublasLib: "emulated", driverVersion: 13000,
				cudnnVersion: 91300, cudnnCudart: 13000, cublasVersion: 130100, nvidiaDriver: "emulated",
			}, nil
		})
		if err != nil {
			return nil, err
		}
		return d, nil
	}
}

// emuConvOverride, when set (by a test), runs the convolutions instead of the naive emulator loops.
var emuConvOverride func(cv *convArgs) error

// emuGPU is the gpu of an emulated device.
type emuGPU struct {
	host map[unsafe.Pointer][]byte // "pinned" host memory handed out (Go memory, kept alive here)
	// blocks are the sizes of the device allocations that are live, for memInfo.
	blocks map[uint64]int64
	used   int64
	// heuristicLists and timedLists count the algorithm lists asked for; failTiming makes timing fail as
	// cudnnFind*AlgorithmEx can (out of memory for its trials).
	heuristicLists, timedLists int
	failTiming                 bool
	// recording is set between graphBegin and graphEnd, when the compute stream's commands go into
	// recorded instead of running; graphs are the recordings kept, by the device's id.
	recording bool
	recorded  []cmd
	graphs    map[uint64][]cmd
	// comms are the collective groups joined, all of one rank (see joinCollectives).
	comms map[uint64]bool
}

// emuMemory is the emulated device's memory, as deviceInfo reports it.
const emuMemory = 16 << 30

func (e *emuGPU) exec(c *cmd) error {
	if e.recording {
		switch c.kind {
		case cmdLaunch, cmdMemset, cmdCopyDtoD, cmdConv, cmdGemm:
			// A copy: the queue reuses its slots. Arguments are values (args, gemm, conv), and the conv
			// plan and algorithm live until Close.
			e.recorded = append(e.recorded, *c)
			return nil
		case cmdGraphCtl:
		default:
			// Stream capture would be invalidated (or the host work would not be repeated by a replay);
			// the device refuses these before they get here.
			return fmt.Errorf("emulator: command %d (%s) issued while a graph is recorded", c.kind, c.op)
		}
	}
	switch c.kind {
	case cmdLaunch:
		return emuLaunch(kernelTable[c.kernel].name, int(c.grid[0]), int(c.grid[1]), c.args[:c.nargs])
	case cmdMemset:
		C.emu_memset0(C.uint64_t(c.dst), C.int64_t(c.n))
	case cmdCopyDtoD:
		C.emu_memcpy(C.uint64_t(c.dst), C.uint64_t(c.src), C.int64_t(c.n))
	case cmdCopyHtoD, cmdUpload:
		C.emu_memcpy(C.uint64_t(c.dst), C.uint64_t(uintptr(c.host)), C.int64_t(c.n))
	case cmdDownload:
		C.emu_memcpy(C.uint64_t(uintptr(c.host)), C.uint64_t(c.src), C.int64_t(c.n))
	case cmdSync, cmdWaitSlot:
	case cmdGemm:
		g := &c.gemm
		C.emu_sgemm(C.int(g.ta), C.int(g.tb), C.int(g.m), C.int(g.n), C.int(g.k), C.uint64_t(g.a), C.int(g.lda),
			C.uint64_t(g.b), C.int(g.ldb), C.float(g.beta), C.uint64_t(g.c), C.int(g.ldc))
	case cmdConv:
		cv := &c.conv
		if cv.wsBytes > 0 && cv.ws == 0 {
			return fmt.Errorf("emulator: convolution without its %d-byte workspace", cv.wsBytes)
		}
		if emuConvOverride != nil {
			return emuConvOverride(cv)
		}
		g := cv.plan.geom
		C.emu_conv(C.int(cv.dir), C.int(g.DType), C.int(b2i(g.Layout == backend.NHWC)), C.int(g.N), C.int(g.Cin),
			C.int(g.H), C.int(g.W), C.int(g.Cout), C.int(g.KH), C.int(g.KW), C.int(g.Stride), C.int(g.PadH), C.int(g.PadW), C.int(g.OH),
			C.int(g.OW), C.int(max(g.Groups, 1)), C.uint64_t(cv.x), C.uint64_t(cv.w), C.uint64_t(cv.y), C.float(cv.beta))
	case cmdGraph:
		g, ok := e.graphs[c.graph]
		if !ok {
			return fmt.Errorf("emulator: launching graph %d, which does not exist", c.graph)
		}
		for i := range g {
			if err := e.exec(&g[i]); err != nil {
				return err
			}
		}
	case cmdCollective:
		// Among one rank, a sum is the rank's own values and a broadcast from rank 0 leaves them.
		if !e.comms[c.coll.comm] {
			return fmt.Errorf("emulator: collective on group %d, which does not exist", c.coll.comm)
		}
	case cmdFunc, cmdGraphCtl:
		return c.fn(e)
	default:
		return fmt.Errorf("emulator: unknown command %d", c.kind)
	}
	return nil
}

// emuLaunch runs a kernel with arguments packed as for cuLaunchKernel (one 8-byte slot each).
func emuLaunch(name string, gx, gy int, args []uint64) error {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	var p *C.uint64_t
	if len(args) > 0 {
		p = (*C.uint64_t)(unsafe.Pointer(&args[0]))
	}
	switch C.emu_launch(cs, C.int(gx), C.int(gy), p, C.int(len(args))) {
	case -1:
		return fmt.Errorf("emulator: no kernel %q", name)
	case -2:
		return fmt.Errorf("emulator: kernel %q launched with %d arguments", name, len(args))
	}
	return nil
}

// emuKernels is the number of kernels the emulator knows.
func emuKernels() int { return int(C.emu_kernel_count()) }

// emuMemcpy copies n bytes between emulator (host) addresses.
func emuMemcpy(dst, src uint64, n int64) {
	C.emu_memcpy(C.uint64_t(dst), C.uint64_t(src), C.int64_t(n))
}

func (e *emuGPU) memAlloc(bytes int64) (uint64, error) {
	p := uint64(C.emu_alloc(C.int64_t(bytes)))
	if p == 0 {
		return 0, &Error{Call: fmt.Sprintf("cuMemAlloc(%d bytes)", bytes), Name: "CUDA_ERROR_OUT_OF_MEMORY"}
	}
	if e.blocks == nil {
		e.blocks = map[uint64]int64{}
	}
	e.blocks[p] = bytes
	e.used += bytes
	return p, nil
}

func (e *emuGPU) memFree(blocks []uint64) error {
	for _, b := range blocks {
		C.emu_free(C.uint64_t(b))
		e.used -= e.blocks[b]
		delete(e.blocks, b)
	}
	return nil
}

func (e *emuGPU) memInfo() (free, total int64, err error) { return emuMemory - e.used, emuMemory, nil }

func (e *emuGPU) hostAlloc(bytes int64) (unsafe.Pointer, error) {
	buf := make([]byte, bytes)
	p := unsafe.Pointer(&buf[0])
	if e.host == nil {
		e.host = map[unsafe.Pointer][]byte{}
	}
	e.host[p] = buf
	return p, nil
}

func (e *emuGPU) hostFree(p unsafe.Pointer) error {
	delete(e.host, p)
	return nil
}

func (e *emuGPU) newConvPlan(g convGeom) (*convPlan, error) {
	return &convPlan{geom: g, algo: map[algoKey]*convAlgo{}}, nil
}

// emuAlgoLists stand in for cuDNN's candidates of each direction, [0] from its heuristics and [1] from
// timing, best first. They use cuDNN's real algorithm numbers and determinism flags, and are ordered so
// that every rule of the choice (algo.go) picks a different algorithm than its absence would:
//
//	                 deterministic          deterministic, timed  any                    any, timed
//	forward          IMPLICIT_PRECOMP_GEMM  GEMM                  IMPLICIT_PRECOMP_GEMM  GEMM
//	backward data    ALGO_1                 WINOGRAD_NONFUSED     ALGO_0                 ALGO_0
//	backward filter  ALGO_1                 FFT_TILING            ALGO_0                 ALGO_3
//
// A TF32 (tensor-op math) WINOGRAD heads the forward heuristics and is taken only with TF32 allowed;
// emuHugeWorkspace candidates exceed any workspace cap. Workspaces are small but not zero, so that the
// workspace path runs.
var emuAlgoLists = [3][2][]convCandidate{
	convForward: {
		{{algo: 6, ok: true, deterministic: true, math: mathTensorOp, ws: 4096},
			{algo: 7, ok: true, deterministic: true, math: mathFMA, ws: emuHugeWorkspace},
			{algo: 1, ok: true, deterministic: true, math: mathFMA, ws: 4096},
			{algo: 0, ok: true, deterministic: true, math: mathFMA}},
		{{algo: 4, ok: true, deterministic: true, math: mathFMA, ws: emuHugeWorkspace},
			{algo: 2, ok: true, deterministic: true, math: mathFMA, ws: 8192},
			{algo: 1, ok: true, deterministic: true, math: mathFMA, ws: 4096},
			{algo: 0, ok: true, deterministic: true, math: mathFMA}},
	},
	convBackwardData: {
		{{algo: 0, ok: true, math: mathFMA},
			{algo: 1, ok: true, deterministic: true, math: mathFMA, ws: 4096}},
		{{algo: 0, ok: true, math: mathFMA},
			{algo: 5, ok: true, deterministic: true, math: mathFMA, ws: 12288},
			{algo: 1, ok: true, deterministic: true, math: mathFMA, ws: 4096}},
	},
	convBackwardFilter: {
		{{algo: 0, ok: true, math: mathFMA},
			{algo: 2, ok: true, deterministic: true, math: mathFMA, ws: emuHugeWorkspace},
			{algo: 1, ok: true, deterministic: true, math: mathFMA, ws: 4096}},
		{{algo: 3, ok: true, math: mathFMA, ws: 4096},
			{algo: 6, ok: true, deterministic: true, math: mathFMA, ws: 16384},
			{algo: 0, ok: true, math: mathFMA},
			{algo: 1, ok: true, deterministic: true, math: mathFMA, ws: 4096}},
	},
}

const emuHugeWorkspace = 1 << 40

func (e *emuGPU) convCandidates(p *convPlan, dir convDir, timed bool, x, w, y uint64, wsLimit int64) ([]convCandidate, error) {
	if !timed {
		e.heuristicLists++
		return slices.Clone(emuAlgoLists[dir][0]), nil
	}
	e.timedLists++
	if e.failTiming {
		return nil, &Error{Call: "cudnnFindConvolution*AlgorithmEx(" + p.geom.String() + ", " + dir.String() + ")",
			Name: "CUDNN_STATUS_ALLOC_FAILED"}
	}
	cands := slices.Clone(emuAlgoLists[dir][1])
	for i := range cands {
		cands[i].ok = cands[i].ws <= wsLimit // what the trial workspace cannot hold does not run
	}
	return cands, nil
}

// newConvAlgo gives a candidate the workspace its list says (the fallback algorithms need none).
func (e *emuGPU) newConvAlgo(_ *convPlan, dir convDir, c convCandidate) (*convAlgo, error) {
	return &convAlgo{ws: c.ws}, nil
}

func (e *emuGPU) destroyConvPlan(p *convPlan) {}

func (e *emuGPU) graphBegin() error {
	if e.recording {
		return fmt.Errorf("emulator: a graph is already being recorded")
	}
	e.recording, e.recorded = true, nil
	return nil
}

func (e *emuGPU) graphEnd(id uint64, keep bool) error {
	if !e.recording {
		return fmt.Errorf("emulator: no graph is being recorded")
	}
	if keep {
		if e.graphs == nil {
			e.graphs = map[uint64][]cmd{}
		}
		e.graphs[id] = e.recorded
	}
	e.recording, e.recorded = false, nil
	return nil
}

func (e *emuGPU) graphDestroy(id uint64) error {
	if _, ok := e.graphs[id]; !ok {
		return fmt.Errorf("emulator: destroying graph %d, which does not exist", id)
	}
	delete(e.graphs, id)
	return nil
}

// The emulated device has no NCCL: its groups have one rank, whose collectives change nothing, so the
// device's side of them (operand checks, queueing, closing) runs without a library or a second process.
func (e *emuGPU) collectiveID() ([]byte, error) {
	id := make([]byte, collectiveIDBytes)
	copy(id, "kernel emulator: groups of one rank")
	return id, nil
}

func (e *emuGPU) joinCollectives(comm uint64, _ []byte, _, world int) error {
	if world != 1 {
		return fmt.Errorf("emulator: a collective group of %d ranks; the kernel emulator has groups of one rank only", world)
	}
	if e.comms == nil {
		e.comms = map[uint64]bool{}
	}
	e.comms[comm] = true
	return nil
}

func (e *emuGPU) leaveCollectives(comm uint64, _ bool) error {
	if !e.comms[comm] {
		return fmt.Errorf("emulator: leaving collective group %d, which does not exist", comm)
	}
	delete(e.comms, comm)
	return nil
}

func (e *emuGPU) close() {}
