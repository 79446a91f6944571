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
	stats   []float64 // per-(channel, chunk) partial statistics (batch norm)
	chan64  []float64 // per-output bias-gradient sums (linear backward)
	chan32  []float32 // per-channel constants of a pass (batch norm)

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

// Alloc implements backend.Device. Only F32 and I32 tensors in NCHW order are supported.
func (d *Device) Alloc(shape backend.Shape, dt backend.DType, layout backend.Layout) (backend.Tensor, error) {
	if layout != backend.NCHW {
		return backend.Tensor{}, fmt.Errorf("cpu: Alloc: layout %v is not supported; the CPU backend stores activations NCHW", layout)
	}
	for _, s := range shape {
		if s < 0 {
			return backend.Tensor{}, fmt.Errorf("cpu: Alloc: shape %v has a negative dimension", shape)
		}
	}
	n := shape.Numel()
	b := &buffer{dt: dt}
	switch dt {
	case backend.F32:
		b.f32 = make([]float32, n)
	case backend.I32:
		b.i32 = make([]int32, n)
	default:
		return backend.Tensor{}, fmt.Errorf("cpu: Alloc: dtype %v is not supported; the CPU backend computes in f32 (i32 for labels)", dt)
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
	v, err := f32View("Upload", "dst", dst)
	if err != nil {
		return err
	}
	if len(src) != len(v) {
		return fmt.Errorf("cpu: Upload: source has %d values, tensor %v holds %d", len(src), dst.Shape, len(v))
	}
	copy(v, src)
	return nil
}

// UploadInt32 implements backend.Device.
func (d *Device) UploadInt32(dst backend.Tensor, src []int32) error {
	v, err := i32View("UploadInt32", "dst", dst)
	if err != nil {
		return err
	}
	if len(src) != len(v) {
		return fmt.Errorf("cpu: UploadInt32: source has %d values, tensor %v holds %d", len(src), dst.Shape, len(v))
	}
	copy(v, src)
	return nil
}

// Download implements backend.Device.
func (d *Device) Download(dst []float32, src backend.Tensor) error {
	v, err := f32View("Download", "src", src)
	if err != nil {
		return err
	}
	if len(dst) != len(v) {
		return fmt.Errorf("cpu: Download: destination has room for %d values, tensor %v holds %d", len(dst), src.Shape, len(v))
	}
	copy(dst, v)
	return nil
}

// Zero implements backend.Device.
func (d *Device) Zero(t backend.Tensor) error {
	b, err := bufferOf("Zero", "t", t)
	if err != nil {
		return err
	}
	if b.dt == backend.I32 {
		clear(b.i32[t.Off : t.Off+t.Numel()])
	} else {
		clear(b.f32[t.Off : t.Off+t.Numel()])
	}
	return nil
}

// Copy implements backend.Device. The shapes may differ as long as the element counts and dtypes match.
func (d *Device) Copy(dst, src backend.Tensor) error {
	db, err := bufferOf("Copy", "dst", dst)
	if err != nil {
		return err
	}
	sb, err := bufferOf("Copy", "src", src)
	if err != nil {
		return err
	}
	if db.dt != sb.dt {
		return fmt.Errorf("cpu: Copy: dst is %v, src is %v", db.dt, sb.dt)
	}
	if dst.Numel() != src.Numel() {
		return fmt.Errorf("cpu: Copy: dst %v holds %d values, src %v holds %d", dst.Shape, dst.Numel(), src.Shape, src.Numel())
	}
	n := src.Numel()
	if db.dt == backend.I32 {
		copy(db.i32[dst.Off:dst.Off+n], sb.i32[src.Off:src.Off+n])
	} else {
		copy(db.f32[dst.Off:dst.Off+n], sb.f32[src.Off:src.Off+n])
	}
	return nil
}

// Sync implements backend.Device. Every op has finished when it returns, so there is nothing to wait for.
func (d *Device) Sync() error { return nil }

// Float32s returns the float32 elements a CPU tensor views (data[Off:Off+Numel]), sharing its storage.
func Float32s(t backend.Tensor) ([]float32, error) { return f32View("Float32s", "tensor", t) }

// Int32s returns the int32 elements a CPU tensor views, sharing its storage.
func Int32s(t backend.Tensor) ([]int32, error) { return i32View("Int32s", "tensor", t) }

// bufferOf checks that t is a live view of a CPU buffer in NCHW order and returns the buffer.
func bufferOf(op, name string, t backend.Tensor) (*buffer, error) {
	if t.Buf == nil {
		return nil, fmt.Errorf("cpu: %s: %s is not allocated", op, name)
	}
	b, ok := t.Buf.(*buffer)
	if !ok {
		return nil, fmt.Errorf("cpu: %s: %s was allocated by another backend (%T)", op, name, t.Buf)
	}
	if b.freed {
		return nil, fmt.Errorf("cpu: %s: %s was freed", op, name)
	}
	if t.Layout != backend.NCHW {
		return nil, fmt.Errorf("cpu: %s: %s has layout %v; the CPU backend supports NCHW only", op, name, t.Layout)
	}
	if t.DType != b.dt {
		return nil, fmt.Errorf("cpu: %s: %s is labelled %v but its buffer holds %v", op, name, t.DType, b.dt)
	}
	for _, s := range t.Shape {
		if s < 0 {
			return nil, fmt.Errorf("cpu: %s: %s has shape %v with a negative dimension", op, name, t.Shape)
		}
	}
	if n := t.Numel(); t.Off < 0 || t.Off+n > b.Len() {
		return nil, fmt.Errorf("cpu: %s: %s views elements [%d, %d) of a buffer of %d", op, name, t.Off, t.Off+n, b.Len())
	}
	return b, nil
}

func f32View(op, name string, t backend.Tensor) ([]float32, error) {
	b, err := bufferOf(op, name, t)
	if err != nil {
		return nil, err
	}
	if b.dt != backend.F32 {
		return nil, fmt.Errorf("cpu: %s: %s is %v, want f32", op, name, b.dt)
	}
	n := t.Numel()
	return b.f32[t.Off : t.Off+n : t.Off+n], nil
}

func i32View(op, name string, t backend.Tensor) ([]int32, error) {
	b, err := bufferOf(op, name, t)
	if err != nil {
		return nil, err
	}
	if b.dt != backend.I32 {
		return nil, fmt.Errorf("cpu: %s: %s is %v, want i32", op, name, b.dt)
	}
	n := t.Numel()
	return b.i32[t.Off : t.Off+n : t.Off+n], nil
}

// dims4 returns the (N, C, H, W) of a 4-D f32 tensor and its elements.
func dims4(op, name string, t backend.Tensor) (v []float32, n, c, h, w int, err error) {
	if len(t.Shape) != 4 {
		return nil, 0, 0, 0, 0, fmt.Errorf("cpu: %s: %s has shape %v, want 4-D (N, C, H, W)", op, name, t.Shape)
	}
	v, err = f32View(op, name, t)
	if err != nil {
		return nil, 0, 0, 0, 0, err
	}
	return v, t.Shape[0], t.Shape[1], t.Shape[2], t.Shape[3], nil
}

// shaped returns the elements of an f32 tensor after checking that its shape is exactly want.
func shaped(op, name string, t backend.Tensor, want ...int) ([]float32, error) {
	if !t.Shape.Equal(backend.Shape(want)) {
		// Copy want so it does not escape: the variadic slice then stays on the caller's stack.
		return nil, fmt.Errorf("cpu: %s: %s has shape %v, want %v", op, name, t.Shape, append([]int(nil), want...))
	}
	return f32View(op, name, t)
}

// checker validates a series of operands, keeping the first error so call sites stay flat.
type checker struct {
	op  string
	err error
}

// vec returns the elements of a per-channel tensor of shape (c).
func (k *checker) vec(name string, t backend.Tensor, c int) []float32 {
	if k.err != nil {
		return nil
	}
	v, err := shaped(k.op, name, t, c)
	k.err = err
	return v
}

// grow returns s resized to n elements, reallocating only when its capacity is too small. The contents
// are not preserved.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}
