//go:build cuda

package cuda

// Collectives among the GPUs of a data-parallel job on NCCL (backend.CollectiveDevice). libnccl.so.2 is
// opened with dlopen at the first collective call, not when the device opens: a run on one GPU never
// needs it. The communicator is made on the device's owner thread, whose current context is the device's,
// and the collectives run on the compute stream, in order with the work queued before and after them.

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cuda.h>
#include <nccl.h>

#define RN_NCCL_FN(name) static __typeof__(name)* pn_##name
#define RN_NCCL_SYM(h, name)                                           \
  do {                                                                 \
    *(void**)(&pn_##name) = dlsym(h, #name);                           \
    if (!pn_##name) {                                                  \
      snprintf(rn_nccl_msg, sizeof rn_nccl_msg, "%s", #name);          \
      return 2;                                                        \
    }                                                                  \
  } while (0)

// The Go side names the results by their values (ncclResultNames): an NCCL that renumbers them must not
// build.
_Static_assert(ncclInProgress == 7 && ncclNumResults == 8, "ncclResult_t changed: update ncclResultNames");

static char rn_nccl_msg[1024];
static const char* rn_nccl_message(void) { return rn_nccl_msg; }

RN_NCCL_FN(ncclGetVersion);
RN_NCCL_FN(ncclGetUniqueId);
RN_NCCL_FN(ncclCommInitRank);
RN_NCCL_FN(ncclCommDestroy);
RN_NCCL_FN(ncclCommAbort);
RN_NCCL_FN(ncclAllReduce);
RN_NCCL_FN(ncclBroadcast);
RN_NCCL_FN(ncclGetErrorString);
RN_NCCL_FN(ncclGetLastError); // NCCL 2.13 and newer; NULL before

// rn_load_nccl opens lib and looks its entry points up: 0 on success, 1 when it does not open, 2 when it
// lacks a symbol (named by rn_nccl_message). A failed attempt leaves a library opened before in place.
static int rn_load_nccl(const char* lib) {
  void* h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* e = dlerror();
    snprintf(rn_nccl_msg, sizeof rn_nccl_msg, "%s", e ? e : "dlopen failed");
    return 1;
  }
  RN_NCCL_SYM(h, ncclGetVersion);
  RN_NCCL_SYM(h, ncclGetUniqueId);
  RN_NCCL_SYM(h, ncclCommInitRank);
  RN_NCCL_SYM(h, ncclCommDestroy);
  RN_NCCL_SYM(h, ncclCommAbort);
  RN_NCCL_SYM(h, ncclAllReduce);
  RN_NCCL_SYM(h, ncclBroadcast);
  RN_NCCL_SYM(h, ncclGetErrorString);
  *(void**)(&pn_ncclGetLastError) = dlsym(h, "ncclGetLastError");
  return 0;
}

static const char* rn_nccl_error_string(ncclResult_t r) {
  return pn_ncclGetErrorString ? pn_ncclGetErrorString(r) : NULL;
}
static const char* rn_nccl_last_error(ncclComm_t c) { return pn_ncclGetLastError ? pn_ncclGetLastError(c) : NULL; }

static ncclResult_t rn_ncclGetVersion(int* v) { return pn_ncclGetVersion(v); }

// The unique id crosses to Go as its NCCL_UNIQUE_ID_BYTES bytes.
static ncclResult_t rn_ncclGetUniqueId(char* out) {
  ncclUniqueId id;
  ncclResult_t r = pn_ncclGetUniqueId(&id);
  if (r == ncclSuccess) memcpy(out, id.internal, NCCL_UNIQUE_ID_BYTES);
  return r;
}
static ncclResult_t rn_ncclCommInitRank(ncclComm_t* c, int world, const char* idBytes, int rank) {
  ncclUniqueId id;
  memcpy(id.internal, idBytes, NCCL_UNIQUE_ID_BYTES);
  return pn_ncclCommInitRank(c, world, id, rank);
}
static ncclResult_t rn_ncclCommDestroy(ncclComm_t c) { return pn_ncclCommDestroy(c); }
static ncclResult_t rn_ncclCommAbort(ncclComm_t c) { return pn_ncclCommAbort(c); }

// In place: NCCL allows send == recv for both.
static ncclResult_t rn_ncclAllReduceSum(CUdeviceptr p, size_t n, ncclComm_t c, CUstream s) {
  return pn_ncclAllReduce((const void*)p, (void*)p, n, ncclFloat32, ncclSum, c, (cudaStream_t)s);
}
static ncclResult_t rn_ncclBroadcast(CUdeviceptr p, size_t n, int root, ncclComm_t c, CUstream s) {
  return pn_ncclBroadcast((const void*)p, (void*)p, n, ncclFloat32, root, c, (cudaStream_t)s);
}
*/
import "C"

import (
	"fmt"
	"strings"
	"sync"
	"unsafe"

	"resnet/internal/backend"
)

// ncclLibrary is the NCCL library collectives open.
const ncclLibrary = "libnccl.so.2"

// ncclComm is an NCCL communicator handle (the driver keeps them by the device's ids).
type ncclComm = C.ncclComm_t

// collectiveIDBytes is the size of an NCCL unique id (NCCL_UNIQUE_ID_BYTES).
const collectiveIDBytes = C.NCCL_UNIQUE_ID_BYTES

var (
	ncclOnce    sync.Once
	ncclErr     error
	ncclMu      sync.Mutex // guards ncclVersion, which reports read outside ncclOnce
	ncclVersion string
)

// loadNCCL opens libnccl.so.2 once per process.
func loadNCCL() error {
	ncclOnce.Do(func() {
		if ncclErr = openNCCL(ncclLibrary); ncclErr != nil {
			return
		}
		var v C.int
		if ncclErr = ncclErrOf(C.rn_ncclGetVersion(&v), nil, "ncclGetVersion"); ncclErr != nil {
			return
		}
		ncclMu.Lock()
		ncclVersion = ncclVersionString(int(v))
		ncclMu.Unlock()
	})
	return ncclErr
}

// openNCCL opens lib as the NCCL library; the error says how to get it.
func openNCCL(lib string) error {
	cs := C.CString(lib)
	defer C.free(unsafe.Pointer(cs))
	switch C.rn_load_nccl(cs) {
	case 1:
		return fmt.Errorf("cuda: %s not found, which collectives between GPUs need: install it with "+
			"'pip install nvidia-nccl-cu13' (and put its nvidia/nccl/lib on LD_LIBRARY_PATH) or the system's "+
			"libnccl2 package; on the GPU machine source scripts/gpu-env.sh: %s", lib, C.GoString(C.rn_nccl_message()))
	case 2:
		return fmt.Errorf("cuda: %s has no %s: NCCL 2.x is needed", lib, C.GoString(C.rn_nccl_message()))
	}
	return nil
}

// loadedNCCLVersion is the version of the NCCL library loaded ("2.27.7"), or "" while none is.
func loadedNCCLVersion() string {
	ncclMu.Lock()
	defer ncclMu.Unlock()
	return ncclVersion
}

// ncclResultNames are the names of ncclResult_t's values (checked against nccl.h above).
var ncclResultNames = [...]string{"ncclSuccess", "ncclUnhandledCudaError", "ncclSystemError", "ncclInternalError",
	"ncclInvalidArgument", "ncclInvalidUsage", "ncclRemoteError", "ncclInProgress"}

// ncclErrOf turns an ncclResult_t into an *Error naming the call, the result, NCCL's description of it and,
// where the library has ncclGetLastError, the last error it logged for comm (nil: any communicator).
func ncclErrOf(r C.ncclResult_t, comm C.ncclComm_t, call string) error {
	if r == C.ncclSuccess {
		return nil
	}
	var detail []string
	if p := C.rn_nccl_error_string(r); p != nil {
		detail = append(detail, C.GoString(p))
	}
	if p := C.rn_nccl_last_error(comm); p != nil && *p != 0 {
		detail = append(detail, C.GoString(p))
	}
	return &Error{Call: call, Status: int(r), Name: ncclErrorName(int(r), detail)}
}

// ncclErrorName names an ncclResult_t with NCCL's own words: "ncclInvalidArgument (invalid argument; Invalid
// config blocking attribute value -2147483648)".
func ncclErrorName(r int, detail []string) string {
	name := fmt.Sprintf("ncclResult_t(%d)", r)
	if r >= 0 && r < len(ncclResultNames) {
		name = ncclResultNames[r]
	}
	if len(detail) > 0 {
		name += " (" + strings.Join(detail, "; ") + ")"
	}
	return name
}

// ---- the driver side --------------------------------------------------------------------------------

// collectiveID makes an NCCL unique id: it starts NCCL's rendezvous listener in this process, which the
// ranks joining the group connect to, so this process must live until they have joined.
func (dr *driver) collectiveID() ([]byte, error) {
	if err := loadNCCL(); err != nil {
		return nil, err
	}
	id := make([]byte, collectiveIDBytes)
	if err := ncclErrOf(C.rn_ncclGetUniqueId((*C.char)(unsafe.Pointer(&id[0]))), nil, "ncclGetUniqueId"); err != nil {
		return nil, err
	}
	return id, nil
}

// joinCollectives makes communicator comm of the device: rank of world in the group id names. It returns
// once every rank has joined.
func (dr *driver) joinCollectives(comm uint64, id []byte, rank, world int) error {
	if err := loadNCCL(); err != nil {
		return err
	}
	var c C.ncclComm_t
	r := C.rn_ncclCommInitRank(&c, C.int(world), (*C.char)(unsafe.Pointer(&id[0])), C.int(rank))
	if err := ncclErrOf(r, nil, fmt.Sprintf("ncclCommInitRank(rank %d of %d)", rank, world)); err != nil {
		return err
	}
	if dr.comms == nil {
		dr.comms = map[uint64]ncclComm{}
	}
	dr.comms[comm] = c
	return nil
}

// leaveCollectives destroys communicator comm once its collectives have finished, or with abort set
// stops them (after an error: a rank that failed must not wait for the others).
func (dr *driver) leaveCollectives(comm uint64, abort bool) error {
	c, ok := dr.comms[comm]
	if !ok {
		return fmt.Errorf("cuda: internal error: leaving collective group %d, which does not exist", comm)
	}
	delete(dr.comms, comm)
	if abort {
		return ncclErrOf(C.rn_ncclCommAbort(c), nil, "ncclCommAbort")
	}
	return ncclErrOf(C.rn_ncclCommDestroy(c), nil, "ncclCommDestroy")
}

// abortCollectives stops every communicator still open (the device is closing).
func (dr *driver) abortCollectives() {
	for id := range dr.comms {
		dr.leaveCollectives(id, true) //nolint:errcheck // closing anyway
	}
}

// collective runs a queued collective on the compute stream.
func (dr *driver) collective(c *cmd) error {
	k := &c.coll
	comm, ok := dr.comms[k.comm]
	if !ok {
		return fmt.Errorf("cuda: internal error: collective on group %d, which does not exist", k.comm)
	}
	var r C.ncclResult_t
	var call string
	switch k.kind {
	case collAllReduceSum:
		r = C.rn_ncclAllReduceSum(C.CUdeviceptr(c.dst), C.size_t(k.count), comm, dr.compute)
		call = fmt.Sprintf("ncclAllReduce(%d floats, sum)", k.count)
	case collBroadcast:
		r = C.rn_ncclBroadcast(C.CUdeviceptr(c.dst), C.size_t(k.count), C.int(k.root), comm, dr.compute)
		call = fmt.Sprintf("ncclBroadcast(%d floats, root %d)", k.count, k.root)
	default:
		return fmt.Errorf("cuda: internal error: unknown collective %d", k.kind)
	}
	return ncclErrOf(r, comm, call)
}

// ---- the device side --------------------------------------------------------------------------------

var _ backend.CollectiveDevice = (*Device)(nil)

// collKind is a collective a command runs.
type collKind uint8

const (
	collAllReduceSum collKind = iota + 1
	collBroadcast
)

// collArgs are the operands of a queued collective (its buffer is cmd.dst).
type collArgs struct {
	kind  collKind
	comm  uint64 // the device's id of the communicator
	count int64  // float32 values
	root  int32
}

// collectives is a device's membership of a group (backend.Collectives).
type collectives struct {
	d           *Device
	comm        uint64
	rank, world int
	closed      bool // under d.opMu
}

// NewCollectiveID implements backend.CollectiveDevice: an NCCL unique id (128 bytes). The process that
// makes it runs the group's rendezvous, so it must live until every rank has joined.
func (d *Device) NewCollectiveID() ([]byte, error) {
	const op = "NewCollectiveID"
	if err := d.begin(op); err != nil {
		d.end()
		return nil, err
	}
	defer d.end()
	var id []byte
	err := d.onOwner(op, func(g gpu) error {
		var err error
		id, err = g.collectiveID()
		return err
	})
	return id, err
}

// JoinCollectives implements backend.CollectiveDevice: ncclCommInitRank on the device's GPU. It blocks
// the device until all world ranks have joined.
func (d *Device) JoinCollectives(id []byte, rank, world int) (backend.Collectives, error) {
	const op = "JoinCollectives"
	if err := named(backend.CheckJoinCollectives(rank, world)); err != nil {
		return nil, err
	}
	if len(id) != collectiveIDBytes {
		return nil, fmt.Errorf("cuda: %s: the group id has %d bytes; an NCCL id (from NewCollectiveID) has %d",
			op, len(id), collectiveIDBytes)
	}
	if err := d.begin(op); err != nil {
		d.end()
		return nil, err
	}
	defer d.end()
	d.lastComm++
	c := &collectives{d: d, comm: d.lastComm, rank: rank, world: world}
	id = append([]byte(nil), id...)
	if err := d.onOwner(op, func(g gpu) error { return g.joinCollectives(c.comm, id, rank, world) }); err != nil {
		return nil, err
	}
	if d.comms == nil {
		d.comms = map[uint64]*collectives{}
	}
	d.comms[c.comm] = c
	d.reportMu.Lock()
	d.nccl = loadedNCCLVersion()
	d.reportMu.Unlock()
	return c, nil
}

// ncclVersion is the version of the NCCL library the device's collective groups use, or "" before it
// joined one (or on the emulator, which needs none).
func (d *Device) ncclVersion() string {
	d.reportMu.Lock()
	defer d.reportMu.Unlock()
	return d.nccl
}

// AllReduceSum implements backend.Collectives: ncclAllReduce in place on the compute stream.
func (c *collectives) AllReduceSum(t backend.Tensor, offset, count int) error {
	const op = "AllReduceSum"
	return c.queue(op, t, backend.CheckAllReduceSum(t, offset, count), collArgs{kind: collAllReduceSum},
		offset, count)
}

// Broadcast implements backend.Collectives: ncclBroadcast in place on the compute stream.
func (c *collectives) Broadcast(t backend.Tensor, root int) error {
	const op = "Broadcast"
	return c.queue(op, t, backend.CheckBroadcast(t, root, c.world), collArgs{kind: collBroadcast, root: int32(root)},
		0, t.Numel())
}

// queue queues collective k on values [offset, offset+count) of t once checkErr (the operand checks'
// result) is nil.
func (c *collectives) queue(op string, t backend.Tensor, checkErr error, k collArgs, offset, count int) error {
	d := c.d
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	if c.closed {
		return fmt.Errorf("cuda: %s: the collective group was closed", op)
	}
	if err := d.notRecording(op, "runs a collective among processes"); err != nil {
		return err
	}
	a := addrs{d: d, op: op, err: named(checkErr)}
	ptr := a.of("t", t)
	if a.err != nil || count == 0 {
		return a.err
	}
	k.comm, k.count = c.comm, int64(count)
	d.enqueue(&cmd{kind: cmdCollective, op: op, dst: ptr + 4*uint64(offset), coll: k})
	return nil
}

// Close implements backend.Collectives: it waits for the queued work and destroys the communicator, or
// aborts it when that work failed (the error is returned). Closing the device closes its groups.
func (c *collectives) Close() error {
	const op = "Collectives.Close"
	d := c.d
	err := d.begin(op)
	defer d.end()
	if d.closed || c.closed {
		return nil
	}
	c.closed = true
	delete(d.comms, c.comm)
	if err == nil {
		err = d.call(&cmd{kind: cmdSync, op: op})
	}
	abort := err != nil
	if e := d.onOwner(op, func(g gpu) error { return g.leaveCollectives(c.comm, abort) }); e != nil && err == nil {
		err = e
	}
	return err
}
