//go:build cuda

package cuda

import (
	"fmt"
	"math"

	"resnet/internal/backend"
)

// argPack builds one kernel launch: the launcher names the kernel and its grid, appends the arguments with
// typed methods, and run checks them against the kernel's signature in kernelTable before queueing. The
// pack lives in the Device and is reused, so a launch allocates nothing.
//
//	err := d.launch(op, kReLUForward, d.blocksFor(n), 1).p(x).p(y).l(n).run()
type argPack struct {
	d   *Device
	c   cmd
	sig [maxKernelArgs]byte
	bad string
}

// launch starts a launch of kernel k on a (gx, gy) grid of blockSize-thread blocks.
func (d *Device) launch(op string, k kernelID, gx, gy int) *argPack {
	a := &d.pack
	a.c = cmd{kind: cmdLaunch, op: op, kernel: k}
	a.bad = ""
	switch {
	case gx < 1 || gy < 1:
		a.bad = fmt.Sprintf("empty grid %dx%d", gx, gy)
	case gx > d.info.maxGridX || gy > d.info.maxGridY:
		a.bad = fmt.Sprintf("grid %dx%d exceeds the device's %dx%d", gx, gy, d.info.maxGridX, d.info.maxGridY)
	}
	a.c.grid = [3]uint32{uint32(gx), uint32(gy), 1}
	return a
}

// launchAs is launch of kernel k's variant for activations of dt in layout (see variant).
func (d *Device) launchAs(op string, k kernelID, dt backend.DType, layout backend.Layout, gx, gy int) *argPack {
	v, ok := variant(k, dt, layout)
	a := d.launch(op, v, gx, gy)
	if !ok && a.bad == "" {
		a.bad = fmt.Sprintf("no %v %v variant", dt, layout)
	}
	return a
}

func (a *argPack) put(v uint64, kind byte) *argPack {
	if int(a.c.nargs) >= maxKernelArgs {
		a.bad = "too many arguments"
		return a
	}
	a.c.args[a.c.nargs] = v
	a.sig[a.c.nargs] = kind
	a.c.nargs++
	return a
}

// p appends a device pointer.
func (a *argPack) p(v uint64) *argPack { return a.put(v, 'p') }

// i appends an int (32-bit in the kernel).
func (a *argPack) i(v int) *argPack {
	if v < math.MinInt32 || v > math.MaxInt32 {
		a.bad = fmt.Sprintf("argument %d (%d) does not fit an int", a.c.nargs, v)
	}
	return a.put(uint64(uint32(int32(v))), 'i')
}

// l appends a long long.
func (a *argPack) l(v int64) *argPack { return a.put(uint64(v), 'l') }

// f appends a float.
func (a *argPack) f(v float32) *argPack { return a.put(uint64(math.Float32bits(v)), 'f') }

// run queues the launch and counts it.
func (a *argPack) run() error {
	k := a.c.kernel
	sig := kernelTable[k].sig
	ok := a.bad == "" && int(a.c.nargs) == len(sig)
	for i := 0; ok && i < len(sig); i++ {
		ok = a.sig[i] == sig[i]
	}
	if !ok {
		why := a.bad
		if why == "" {
			why = fmt.Sprintf("arguments %q, want %q", string(a.sig[:a.c.nargs]), sig)
		}
		return fmt.Errorf("cuda: %s: internal error: launching %s: %s", a.c.op, kernelTable[k].name, why)
	}
	a.d.launches[k].Add(1)
	a.d.enqueue(&a.c)
	return nil
}

// blocksFor is the grid of a grid-stride kernel over total elements: one element per thread up to a few
// waves of the whole GPU (8 resident blocks per SM), then the threads loop.
func (d *Device) blocksFor(total int64) int {
	b := (total + blockSize - 1) / blockSize
	return int(max(1, min(b, int64(8*max(d.info.sms, 1)))))
}

// blocksOf is the grid of a kernel with one thread per item.
func blocksOf(items int) int { return max(1, (items+blockSize-1)/blockSize) }
