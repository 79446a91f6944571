//go:build cuda

package cuda

// Launchers of kernels/sgd.cu. The fused step updates every parameter in one launch from a device table
// of slot descriptors (struct SgdSlot in the kernel file, 48 bytes each). A training loop passes the same
// slots every step, so the table is built and uploaded once and found again by its contents.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"resnet/internal/backend"
)

const (
	sgdSlotBytes = 48
	sgdPerBlock  = blockSize * 4 // SGD_PER_BLOCK in kernels/sgd.cu
	sgdMaxTables = 64
)

type sgdTable struct {
	desc   []byte // the descriptors, to tell hash collisions apart
	dev    block
	host   unsafe.Pointer // pinned copy the upload reads from
	blocks int64
}

type sgdState struct {
	desc   []byte // descriptors being built (reused)
	tables map[uint64]*sgdTable
}

// slotAddrs returns the addresses of slot i after checking that this device allocated its tensors.
func (d *Device) slotAddrs(i int, s backend.SGDSlot) (param, grad, buf uint64, err error) {
	a := addrs{d: d, op: "SGDStep"}
	param, grad = a.of("Param", s.Param), a.of("Grad", s.Grad)
	if s.Buf.Valid() {
		buf = a.of("Buf", s.Buf)
	}
	if a.err != nil {
		return 0, 0, 0, fmt.Errorf("%w (slot %d)", a.err, i)
	}
	return param, grad, buf, nil
}

// SGDStep implements backend.Device with PyTorch's update (dampening 0): g = grad*GradScale + wd*p;
// buf = momentum*buf + g; g = nesterov ? g + momentum*buf : buf; p -= lr*g. Buf may be left invalid when
// Momentum is 0. All slots are validated before any parameter changes.
func (d *Device) SGDStep(p backend.SGDParams, slots []backend.SGDSlot) error {
	const op = "SGDStep"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	if err := d.notRecording(op, "runs with this step's learning rate, which a replay would repeat"); err != nil {
		return err
	}
	if err := backend.CheckSGDStep(p, slots); err != nil {
		return named(err)
	}
	nesterov, gradScale := b2i(p.Nesterov), p.Unscale()
	st := &d.sgd
	st.desc = st.desc[:0]
	var blocks int64
	for i, s := range slots {
		param, grad, buf, err := d.slotAddrs(i, s)
		if err != nil {
			return err
		}
		n := int64(s.Param.Numel())
		if d.opt.Unfused {
			continue
		}
		var e [sgdSlotBytes]byte
		binary.LittleEndian.PutUint64(e[0:], param)
		binary.LittleEndian.PutUint64(e[8:], grad)
		binary.LittleEndian.PutUint64(e[16:], buf)
		binary.LittleEndian.PutUint64(e[24:], uint64(n))
		binary.LittleEndian.PutUint64(e[32:], uint64(blocks))
		binary.LittleEndian.PutUint32(e[40:], math.Float32bits(s.WeightDecay))
		st.desc = append(st.desc, e[:]...)
		blocks += (n + sgdPerBlock - 1) / sgdPerBlock
	}
	if d.opt.Unfused {
		for i, s := range slots {
			param, grad, buf, _ := d.slotAddrs(i, s)
			n := int64(s.Param.Numel())
			if n == 0 {
				continue
			}
			if err := d.launch(op, kSGDStepSingle, d.blocksFor(n), 1).p(param).p(grad).p(buf).l(n).f(p.LR).
				f(p.Momentum).i(nesterov).f(s.WeightDecay).f(gradScale).run(); err != nil {
				return err
			}
		}
		return nil
	}
	if blocks == 0 {
		return nil
	}
	t, err := d.sgdTable(op, blocks)
	if err != nil {
		return err
	}
	return d.launch(op, kSGDStep, int(blocks), 1).p(t.dev.ptr).i(len(slots)).f(p.LR).f(p.Momentum).i(nesterov).
		f(gradScale).run()
}

// sgdTable returns the device copy of the descriptors in d.sgd.desc, uploading them the first time.
func (d *Device) sgdTable(op string, blocks int64) (*sgdTable, error) {
	st := &d.sgd
	h := uint64(14695981039346656037) // FNV-1a
	for _, b := range st.desc {
		h = (h ^ uint64(b)) * 1099511628211
	}
	if t, ok := st.tables[h]; ok && bytes.Equal(t.desc, st.desc) {
		return t, nil
	}
	if st.tables == nil || len(st.tables) >= sgdMaxTables {
		if err := d.dropSGDTables(op); err != nil {
			return nil, err
		}
	}
	size := int64(len(st.desc))
	t := &sgdTable{desc: append([]byte(nil), st.desc...), blocks: blocks}
	var err error
	if t.dev, err = d.alloc(op, size); err != nil {
		return nil, err
	}
	if err := d.onOwner(op, func(dr gpu) error {
		var err error
		t.host, err = dr.hostAlloc(size)
		return err
	}); err != nil {
		d.release(t.dev)
		return nil, err
	}
	d.hostOwned = append(d.hostOwned, t.host)
	copy(unsafe.Slice((*byte)(t.host), size), t.desc)
	d.enqueue(&cmd{kind: cmdCopyHtoD, op: op, dst: t.dev.ptr, host: t.host, n: size})
	st.tables[h] = t
	return t, nil
}

// dropSGDTables frees every cached table (a loop that keeps changing its slots would otherwise grow the
// cache without bound).
func (d *Device) dropSGDTables(op string) error {
	st := &d.sgd
	var hosts []unsafe.Pointer
	for _, t := range st.tables {
		d.release(t.dev)
		hosts = append(hosts, t.host)
	}
	st.tables = map[uint64]*sgdTable{}
	if len(hosts) == 0 {
		return nil
	}
	kept := d.hostOwned[:0]
	for _, p := range d.hostOwned {
		drop := false
		for _, q := range hosts {
			drop = drop || p == q
		}
		if !drop {
			kept = append(kept, p)
		}
	}
	d.hostOwned = kept
	return d.onOwner(op, func(dr gpu) error {
		for _, p := range hosts {
			if err := dr.hostFree(p); err != nil {
				return err
			}
		}
		return nil
	})
}
