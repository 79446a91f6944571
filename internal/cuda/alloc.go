package cuda

// The caching device allocator. It is pure Go (the device calls are passed in) so that its bookkeeping is
// tested on any machine.

import (
	"errors"
	"sync"
)

// errOutOfMemory is what a raw allocation function returns (wrapped) when the device is out of memory;
// the allocator then releases its cache and tries once more.
var errOutOfMemory = errors.New("out of device memory")

// Size classes: below 1 MiB a request is rounded up to a multiple of 512 bytes; from 1 MiB up to the next
// quarter of its power of two (1, 1.25, 1.5, 1.75, 2, 2.5, ... MiB), so a cached block serves every later
// request of its class while wasting at most a quarter of its size (whole powers of two would waste up
// to half, which is gigabytes for ImageNet-sized activations).
const (
	smallQuantum = 512
	largeLimit   = 1 << 20
)

// sizeClass is the number of bytes actually reserved for a request of n bytes (0 for n <= 0).
func sizeClass(n int64) int64 {
	if n <= 0 {
		return 0
	}
	if n < largeLimit {
		return (n + smallQuantum - 1) / smallQuantum * smallQuantum
	}
	p := int64(largeLimit)
	for p*2 <= n {
		p *= 2
	}
	step := p / 4
	return (n + step - 1) / step * step
}

// MemStats are the device memory figures of a CUDA device, in bytes except the counts.
type MemStats struct {
	InUse, PeakInUse       int64 // handed out to tensors and scratch buffers (size-class bytes)
	Reserved, PeakReserved int64 // held from the driver: in use plus cached
	DeviceAllocs           int64 // cuMemAlloc calls so far
	DeviceFrees            int64 // cuMemFree calls so far
}

// allocator keeps freed blocks per size class and hands them out again, so that a training step, which
// allocates and frees the same scratch sizes every time, never reaches the driver after the first step.
// Blocks are only reused in stream order (every op runs on one compute stream), so a block freed while a
// queued kernel still uses it is safe to hand to the next op.
type allocator struct {
	// raw allocates from the device; its error wraps errOutOfMemory when the device is full. release
	// frees the given blocks (after waiting for the device to finish with them).
	raw     func(bytes int64) (uint64, error)
	release func(blocks []uint64) error

	mu    sync.Mutex
	free  map[int64][]uint64 // size class -> cached blocks
	stats MemStats
}

func newAllocator(raw func(int64) (uint64, error), release func([]uint64) error) *allocator {
	return &allocator{raw: raw, release: release, free: map[int64][]uint64{}}
}

// alloc returns a block of at least n bytes and its class size. A zero-byte request returns address 0.
func (a *allocator) alloc(n int64) (uint64, int64, error) {
	p, class, ok := a.cached(n)
	if ok {
		return p, class, nil
	}
	return a.fresh(class)
}

// fresh allocates a block of class bytes from the driver (never from the cache) and hands it out.
func (a *allocator) fresh(class int64) (uint64, int64, error) {
	p, err := a.raw(class)
	if errors.Is(err, errOutOfMemory) {
		// Give the cache back to the driver and try once more.
		if rerr := a.trim(); rerr != nil {
			return 0, 0, rerr
		}
		p, err = a.raw(class)
	}
	if err != nil {
		return 0, 0, err
	}
	a.mu.Lock()
	a.stats.DeviceAllocs++
	a.stats.Reserved += class
	a.stats.PeakReserved = max(a.stats.PeakReserved, a.stats.Reserved)
	a.took(class)
	a.mu.Unlock()
	return p, class, nil
}

// cached returns a cached block of at least n bytes and its class, without reaching the driver: ok is
// false when the cache has none (a graph being captured cannot allocate).
func (a *allocator) cached(n int64) (p uint64, class int64, ok bool) {
	class = sizeClass(n)
	a.mu.Lock()
	defer a.mu.Unlock()
	if list := a.free[class]; len(list) > 0 {
		p = list[len(list)-1]
		a.free[class] = list[:len(list)-1]
		a.took(class)
		return p, class, true
	}
	return 0, class, class == 0
}

// reserve makes the cache hold at least count blocks of class bytes, allocating what it lacks.
func (a *allocator) reserve(class int64, count int) error {
	a.mu.Lock()
	lack := count - len(a.free[class])
	a.mu.Unlock()
	for ; lack > 0; lack-- {
		p, c, err := a.fresh(class)
		if err != nil {
			return err
		}
		a.put(p, c)
	}
	return nil
}

// took records class bytes handed out; a.mu is held.
func (a *allocator) took(class int64) {
	a.stats.InUse += class
	a.stats.PeakInUse = max(a.stats.PeakInUse, a.stats.InUse)
}

// put returns a block of the given class to the cache.
func (a *allocator) put(p uint64, class int64) {
	if class == 0 {
		return
	}
	a.mu.Lock()
	a.free[class] = append(a.free[class], p)
	a.stats.InUse -= class
	a.mu.Unlock()
}

// trim releases every cached block to the driver.
func (a *allocator) trim() error {
	a.mu.Lock()
	var blocks []uint64
	var bytes int64
	for class, list := range a.free {
		blocks = append(blocks, list...)
		bytes += class * int64(len(list))
		delete(a.free, class)
	}
	a.mu.Unlock()
	if len(blocks) == 0 {
		return nil
	}
	err := a.release(blocks)
	a.mu.Lock()
	a.stats.DeviceFrees += int64(len(blocks))
	a.stats.Reserved -= bytes
	a.mu.Unlock()
	return err
}

// snapshot returns the current figures.
func (a *allocator) snapshot() MemStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stats
}

// resetPeaks sets the peaks to the current values.
func (a *allocator) resetPeaks() {
	a.mu.Lock()
	a.stats.PeakInUse, a.stats.PeakReserved = a.stats.InUse, a.stats.Reserved
	a.mu.Unlock()
}
