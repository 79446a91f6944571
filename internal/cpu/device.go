// Package cpu is the pure-Go implementation of backend.Device: float32 NCHW tensors, every op written as
// loops over Go slices and spread over all cores by a persistent worker pool. It is also the numerical
// reference the other backends are tested against, so every reduction runs over a fixed partition in a
// fixed order: results are bit-identical whatever the number of workers.
package cpu

import (
	"fmt"
	"runtime"

	"resnet/internal/backend"
)

func init() {
	backend.Register("cpu", func(backend.Options) (backend.Device, error) { return New(), nil })
}

// buffer is the storage behind a CPU tensor. Exactly one of f32 and i32 is used, chosen by dt.
type buffer struct {
	dt    backend.DType
	f32   []float32
	i32   []int32
	freed bool
}

// Len is the capacity in elements.
func (b *buffer) Len() int {
	if b.dt == backend.I32 {
		return len(b.i32)
	}
	return len(b.f32)
}

// DType is the element type the buffer holds.
func (b *buffer) DType() backend.DType { return b.dt }

// Freed reports whether Free has released the buffer.
func (b *buffer) Freed() bool { return b.freed }

// Device is the CPU backend. Its methods must be called from one goroutine at a time (the model drives
// it from its training loop); each method spreads its own work over the worker pool and returns when it
// is done, so Sync has nothing to wait for.
type Device struct {
	pool *pool
	ws   []*workspace // one per worker, indexed by the worker id the pool passes to a task

	// Scratch shared by the workers of one op, grown on demand and reused so the training step does not
	// allocate.
	partial []float32 // per-chunk partial weight gradients (conv backward-filter)
	flipped []float32 // flipped, transposed weights (conv backward-data)
	// convCall counts the forward and backward-data convolution calls; it tells the weights packed by
	// one call from the next call's (convJob.packShifted).
	convCall uint64
	stats    []float64 // per-(channel, chunk) partial statistics (batch norm)
	chan64   []float64 // per-output bias-gradient sums (linear backward)
	chan32   []float32 // per-channel constants of a pass (batch norm)
	syncBuf  *buffer   // the tensor a synchronised batch norm exchanges (batchnorm_sync.go)

	jobs jobs
}

// New returns a CPU device with one worker per usable core (runtime.GOMAXPROCS(0)).
func New() *Device { return NewWithWorkers(runtime.GOMAXPROCS(0)) }

// NewWithWorkers returns a CPU device with the given number of workers (at least 1). Results do not depend
// on the count; tests use it to prove that, benchmarks to measure scaling.
func NewWithWorkers(workers int) *Device {
	if workers < 1 {
		workers = 1
	}
	d := &Device{pool: newPool(workers), ws: make([]*workspace, workers)}
	for i := range d.ws {
		d.ws[i] = &workspace{}
	}
	// The helper goroutines only reference the pool, so an abandoned Device is still collected; stop its
	// helpers when that happens.
	runtime.AddCleanup(d, func(p *pool) { p.close() }, d.pool)
	return d
}

// Workers is the number of goroutines that run an op.
func (d *Device) Workers() int { return len(d.ws) }

// Close stops the worker goroutines. The device stays usable afterwards, running every op on the calling
// goroutine. Calling Close is optional: an unreachable device stops its workers when it is collected.
func (d *Device) Close() { d.pool.close() }

// Name implements backend.Device.
func (d *Device) Name() string { return "cpu" }

// Alloc implements backend.Device.
func (d *Device) Alloc(shape backend.Shape, dt backend.DType, layout backend.Layout) (backend.Tensor, error) {
	if err := backend.CheckAlloc(shape, dt, layout, backend.F32, backend.NCHW); err != nil {
		return backend.Tensor{}, named(err)
	}
	n := shape.Numel()
	b := &buffer{dt: dt}
	if dt == backend.I32 {
		b.i32 = make([]int32, n)
	} else {
		b.f32 = make([]float32, n)
	}
	return backend.Tensor{Shape: append(backend.Shape(nil), shape...), DType: dt, Layout: layout, Buf: b}, nil
}

// Free implements backend.Device. It releases the storage; any later use of a view of it is an error.
func (d *Device) Free(t backend.Tensor) {
	if b, ok := t.Buf.(*buffer); ok {
		b.f32, b.i32, b.freed = nil, nil, true
	}
}

// Upload implements backend.Device.
func (d *Device) Upload(dst backend.Tensor, src []float32) error {
	v := views{op: "Upload", err: named(backend.CheckUpload(dst, src))}
	copy(v.f32("dst", dst), src)
	return v.err
}

// UploadInt32 implements backend.Device.
func (d *Device) UploadInt32(dst backend.Tensor, src []int32) error {
	v := views{op: "UploadInt32", err: named(backend.CheckUploadInt32(dst, src))}
	copy(v.i32("dst", dst), src)
	return v.err
}

// Download implements backend.Device.
func (d *Device) Download(dst []float32, src backend.Tensor) error {
	v := views{op: "Download", err: named(backend.CheckDownload(dst, src))}
	copy(dst, v.f32("src", src))
	return v.err
}

// Zero implements backend.Device.
func (d *Device) Zero(t backend.Tensor) error {
	v := views{op: "Zero", err: named(backend.CheckZero(t))}
	if t.DType == backend.I32 {
		clear(v.i32("t", t))
	} else {
		clear(v.f32("t", t))
	}
	return v.err
}

// Copy implements backend.Device. The shapes may differ as long as the element counts and dtypes match.
func (d *Device) Copy(dst, src backend.Tensor) error {
	v := views{op: "Copy", err: named(backend.CheckCopy(dst, src))}
	if dst.DType == backend.I32 {
		copy(v.i32("dst", dst), v.i32("src", src))
	} else {
		copy(v.f32("dst", dst), v.f32("src", src))
	}
	return v.err
}

// Sync implements backend.Device. Every op has finished when it returns, so there is nothing to wait for.
func (d *Device) Sync() error { return nil }

// Float32s returns the float32 elements a CPU tensor views (data[Off:Off+Numel]), sharing its storage.
func Float32s(t backend.Tensor) ([]float32, error) {
	const op = "Float32s"
	v := views{op: op, err: named(backend.CheckOperand(op, "tensor", t, backend.F32))}
	s := v.f32("tensor", t)
	return s, v.err
}

// Int32s returns the int32 elements a CPU tensor views, sharing its storage.
func Int32s(t backend.Tensor) ([]int32, error) {
	const op = "Int32s"
	v := views{op: op, err: named(backend.CheckOperand(op, "tensor", t, backend.I32))}
	s := v.i32("tensor", t)
	return s, v.err
}

// named puts the backend's name in front of an error of the operand checks in internal/backend.
func named(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("cpu: %w", err)
}

// views turns operands that passed the checks in internal/backend into the slices of their CPU buffers.
// It keeps the first error, starting with that of the checks, so an op takes all its views, then looks.
type views struct {
	op  string
	err error
}

// buffer returns the buffer behind t after checking that the CPU backend allocated it.
func (v *views) buffer(name string, t backend.Tensor) *buffer {
	if v.err != nil {
		return nil
	}
	b, ok := t.Buf.(*buffer)
	if !ok {
		v.err = fmt.Errorf("cpu: %s: %s was allocated by another backend (%T)", v.op, name, t.Buf)
	}
	return b
}

// f32 returns the elements of an f32 operand.
func (v *views) f32(name string, t backend.Tensor) []float32 {
	b := v.buffer(name, t)
	if b == nil {
		return nil
	}
	return b.f32[t.Off : t.Off+t.Numel() : t.Off+t.Numel()]
}

// optional returns the elements of an f32 operand the op can go without, or nil when t is not allocated.
func (v *views) optional(name string, t backend.Tensor) []float32 {
	if !t.Valid() {
		return nil
	}
	return v.f32(name, t)
}

// i32 returns the elements of an i32 operand.
func (v *views) i32(name string, t backend.Tensor) []int32 {
	b := v.buffer(name, t)
	if b == nil {
		return nil
	}
	return b.i32[t.Off : t.Off+t.Numel() : t.Off+t.Numel()]
}

// grow returns s resized to n elements, reallocating only when its capacity is too small. The contents
// are not preserved.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}
