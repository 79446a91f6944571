package cuda

import (
	"errors"
	"fmt"
	"testing"
)

func TestSizeClass(t *testing.T) {
	for _, c := range []struct{ in, want int64 }{
		{0, 0}, {-5, 0}, {1, 512}, {512, 512}, {513, 1024}, {1<<20 - 1, 1 << 20},
		{1 << 20, 1 << 20}, {1<<20 + 1, 1<<20 + 1<<18}, {3 << 20, 3 << 20}, {(3 << 20) + 1, 7 << 19},
		{1 << 30, 1 << 30}, {(1 << 30) + 1, 5 << 28},
	} {
		if got := sizeClass(c.in); got != c.want {
			t.Errorf("sizeClass(%d) = %d, want %d", c.in, got, c.want)
		}
	}
	for n := int64(1); n < 1<<26; n = n*3/2 + 1 {
		cl := sizeClass(n)
		if cl < n || (n >= largeLimit && float64(cl) > 1.25*float64(n)+1) {
			t.Errorf("sizeClass(%d) = %d: too small or wastes more than a quarter", n, cl)
		}
	}
}

// fakeDevice hands out addresses and can be told to run out of memory.
type fakeDevice struct {
	next     uint64
	capacity int64
	used     int64
	live     map[uint64]int64
	released int
}

func (f *fakeDevice) raw(n int64) (uint64, error) {
	if f.used+n > f.capacity {
		return 0, &Error{Call: fmt.Sprintf("cuMemAlloc(%d bytes)", n), Status: 2, Name: "CUDA_ERROR_OUT_OF_MEMORY"}
	}
	f.next += 1 << 32
	f.used += n
	f.live[f.next] = n
	return f.next, nil
}

func (f *fakeDevice) release(blocks []uint64) error {
	for _, b := range blocks {
		f.used -= f.live[b]
		delete(f.live, b)
		f.released++
	}
	return nil
}

func TestAllocatorReusesBlocks(t *testing.T) {
	f := &fakeDevice{capacity: 1 << 40, live: map[uint64]int64{}}
	a := newAllocator(f.raw, f.release)
	p1, c1, err := a.alloc(1000)
	if err != nil || c1 != 1024 {
		t.Fatalf("alloc(1000) = %v, %d, %v", p1, c1, err)
	}
	p2, _, _ := a.alloc(3 << 20)
	a.put(p1, c1)
	// Same class: the cached block comes back without a device allocation.
	p3, c3, _ := a.alloc(1020)
	if p3 != p1 || c3 != c1 {
		t.Fatalf("alloc after free got %x (class %d), want the cached %x", p3, c3, p1)
	}
	s := a.snapshot()
	if s.DeviceAllocs != 2 || s.InUse != 1024+3<<20 || s.PeakInUse != s.InUse || s.Reserved != s.InUse {
		t.Fatalf("stats %+v", s)
	}
	a.put(p2, 3<<20)
	a.put(p3, c3)
	if s := a.snapshot(); s.InUse != 0 || s.PeakInUse != 1024+3<<20 || s.Reserved != 1024+3<<20 {
		t.Fatalf("stats after frees %+v", s)
	}
	if p, c, err := a.alloc(0); p != 0 || c != 0 || err != nil {
		t.Fatalf("alloc(0) = %v, %v, %v", p, c, err)
	}
}

func TestAllocatorTrimsCacheWhenOutOfMemory(t *testing.T) {
	f := &fakeDevice{capacity: 4 << 20, live: map[uint64]int64{}}
	a := newAllocator(f.raw, f.release)
	p, c, err := a.alloc(3 << 20)
	if err != nil {
		t.Fatal(err)
	}
	a.put(p, c)
	// 2 MiB does not fit next to the cached 3 MiB block: the cache is released and the allocation retried.
	if _, _, err := a.alloc(2 << 20); err != nil {
		t.Fatalf("alloc after trim: %v", err)
	}
	if f.released != 1 {
		t.Fatalf("released %d blocks, want 1", f.released)
	}
	s := a.snapshot()
	if s.Reserved != 2<<20 || s.DeviceFrees != 1 || s.PeakReserved != 3<<20 {
		t.Fatalf("stats %+v", s)
	}
	// Still too big: the error names the call and is recognisable as out of memory.
	_, _, err = a.alloc(8 << 20)
	if !errors.Is(err, errOutOfMemory) || err.Error() != "cuda: cuMemAlloc(8388608 bytes): CUDA_ERROR_OUT_OF_MEMORY" {
		t.Fatalf("alloc(8 MiB) error %v", err)
	}
}
