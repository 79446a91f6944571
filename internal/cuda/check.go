//go:build cuda

package cuda

// Launcher of kernels/check.cu.

import (
	"fmt"
	"unsafe"

	"resnet/internal/backend"
)

// FindNonFinite implements backend.Device. The flags (one int32 per tensor, in a device buffer the device
// keeps) are cleared, one find_nonfinite per non-empty tensor sets its own flag, and one download of the
// flags, after the work queued before it, gives the answer: len(ts)*4 bytes cross the bus, whatever the
// tensors hold.
func (d *Device) FindNonFinite(ts []backend.Tensor, nonNegative []bool) (int, error) {
	const op = "FindNonFinite"
	if err := d.begin(op); err != nil {
		d.end()
		return -1, err
	}
	defer d.end()
	if err := backend.CheckFindNonFinite(ts, nonNegative); err != nil {
		return -1, named(err)
	}
	for i, t := range ts {
		a := addrs{d: d, op: op}
		if a.in("tensor", t); a.err != nil {
			return -1, fmt.Errorf("%w (ts[%d])", a.err, i)
		}
	}
	if len(ts) == 0 {
		return -1, nil
	}
	bytes := 4 * int64(len(ts))
	if err := d.grow(op, &d.flags, bytes); err != nil {
		return -1, err
	}
	d.enqueue(&cmd{kind: cmdMemset, op: op, dst: d.flags.ptr, n: 4 * int64(len(ts))})
	for i, t := range ts {
		n := int64(t.Numel())
		if n == 0 {
			continue
		}
		a := addrs{d: d, op: op}
		x := a.in("tensor", t)
		nonNeg := 0
		if nonNegative != nil && nonNegative[i] {
			nonNeg = 1
		}
		if err := d.launch(op, kFindNonFinite, d.blocksFor(n), 1).p(x).l(n).i(nonNeg).p(d.flags.ptr + 4*uint64(i)).
			run(); err != nil {
			return -1, err
		}
	}
	if err := d.growStaging(op, &d.down, bytes); err != nil {
		return -1, err
	}
	if err := d.call(&cmd{kind: cmdDownload, op: op, src: d.flags.ptr, host: d.down.host, n: bytes}); err != nil {
		return -1, err
	}
	for i, f := range unsafe.Slice((*int32)(d.down.host), len(ts)) {
		if f != 0 {
			return i, nil
		}
	}
	return -1, nil
}
