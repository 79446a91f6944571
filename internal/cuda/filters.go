//go:build cuda

package cuda

// The device's converted copies of convolution weights. The parameter table holds f32
// (Cout, Cin, KH, KW) weights (Cin being a group's input channels in a grouped convolution); cuDNN convolves a bf16, f16 or NHWC activation with a filter of the same
// data type, KRSC-ordered for NHWC (docs/decisions/0006-activation-formats.md). So a convolution in such a
// format reads a private copy of its weight, made by kernels/convert.cu, and its filter gradient is
// converted back to f32 (Cout, Cin, KH, KW) before it reaches the caller's dw.
//
// A copy is found by its weight's buffer, element offset, shape and format, and is refreshed only when the
// weight may have changed: every operand an op may write goes through addrs.of, which marks the copies of
// weights it overlaps stale (Upload, Copy, Zero, SGDStep, a backward op writing a gradient into the buffer,
// and any op added later, since of is the default and only operands named read-only escape it). A
// training step thus converts each weight once, in the first convolution after SGDStep, and the backward
// pass reuses the copy. Overlap rather than a generation of the whole buffer: parameters are views into one
// allocation, and a batch norm touching its own gamma must not invalidate every conv weight beside it.
//
// Copies are device memory of the allocator: Free of the buffer hands them back, and Close frees them with
// everything else.

import "resnet/internal/backend"

// filterCopy is one weight converted to the format a convolution reads it in.
type filterCopy struct {
	off, n int    // the weight's element offset in its buffer and its element count
	shape  [4]int // (Cout, Cin, KH, KW)
	format filterFormat
	blk    block // the copy: its dtype in (Cout, Cin, KH, KW) order, or (Cout, KH, KW, Cin) for NHWC
	fresh  bool  // it holds the weight's current values (no write has touched the weight since)
}

// nativeFilter reports whether a convolution of geometry g reads and writes the parameter table's f32
// (Cout, Cin, KH, KW) weights directly.
func nativeFilter(g convGeom) bool { return formatOf(g) == filterFormat{backend.F32, backend.NCHW} }

// filterFormat is the format of a convolution's filter: its activations' dtype and layout.
type filterFormat struct {
	dt     backend.DType
	layout backend.Layout
}

func formatOf(g convGeom) filterFormat { return filterFormat{g.DType, g.Layout} }

// filterKernels are the convert kernels between f32 (Cout, Cin, KH, KW) and each other filter format.
var filterKernels = map[filterFormat]struct{ to, from kernelID }{
	{backend.F32, backend.NHWC}:  {kFilterToF32NHWC, kFilterFromF32NHWC},
	{backend.BF16, backend.NCHW}: {kFilterToBF16NCHW, kFilterFromBF16NCHW},
	{backend.BF16, backend.NHWC}: {kFilterToBF16NHWC, kFilterFromBF16NHWC},
	{backend.F16, backend.NCHW}:  {kFilterToF16NCHW, kFilterFromF16NCHW},
	{backend.F16, backend.NHWC}:  {kFilterToF16NHWC, kFilterFromF16NHWC},
}

// activationKernels are the convert kernels between the f32 NCHW values the host sees and each other
// activation format (Upload, Download).
var activationKernels = map[filterFormat]struct{ to, from kernelID }{
	{backend.F32, backend.NHWC}:  {kActivationToF32NHWC, kActivationFromF32NHWC},
	{backend.BF16, backend.NCHW}: {kActivationToBF16NCHW, kActivationFromBF16NCHW},
	{backend.BF16, backend.NHWC}: {kActivationToBF16NHWC, kActivationFromBF16NHWC},
	{backend.F16, backend.NCHW}:  {kActivationToF16NCHW, kActivationFromF16NCHW},
	{backend.F16, backend.NHWC}:  {kActivationToF16NHWC, kActivationFromF16NHWC},
}

// wrote marks stale the copies of weights that elements [off, off+n) of b overlap.
func (b *buffer) wrote(off, n int) {
	for _, c := range b.filters {
		if off < c.off+c.n && c.off < off+n {
			c.fresh = false
		}
	}
}

// dropFilterCopies hands b's copies back to the allocator (work queued on them stays ahead of any new
// user). d.opMu is held.
func (d *Device) dropFilterCopies(b *buffer) {
	for _, c := range b.filters {
		d.release(c.blk)
	}
	b.filters = nil
	delete(d.filterBufs, b)
}

// filterCopy returns the address of w's copy in the format of geometry g (w at address wp), converting w
// first when the copy is new or stale.
func (d *Device) filterCopy(op string, g convGeom, w backend.Tensor, wp uint64) (uint64, error) {
	b := w.Buf.(*buffer) // addrs checked it
	shape := [4]int{g.Cout, g.GroupCin(), g.KH, g.KW}
	var c *filterCopy
	for _, f := range b.filters {
		if f.off == w.Off && f.shape == shape && f.format == formatOf(g) {
			c = f
			break
		}
	}
	n := g.WLen()
	if c == nil {
		blk, err := d.alloc(op, int64(g.DType.Size())*int64(n))
		if err != nil {
			return 0, err
		}
		c = &filterCopy{off: w.Off, n: n, shape: shape, format: formatOf(g), blk: blk}
		b.filters = append(b.filters, c)
		d.filterBufs[b] = struct{}{}
	}
	if !c.fresh {
		if err := d.convertFilter(op, filterKernels[formatOf(g)].to, g, wp, c.blk.ptr); err != nil {
			return 0, err
		}
		c.fresh = true
	}
	return c.blk.ptr, nil
}

// filterGradient runs backward filter for a geometry whose filter is not f32 (Cout, Cin, KH, KW): cuDNN
// writes the gradient in the geometry's format into scratch, and a convert kernel writes it to dw (at
// address dwp) as f32 (Cout, Cin, KH, KW), overwriting it.
func (d *Device) filterGradient(op string, g convGeom, x, dwp, dy uint64) error {
	s, err := d.tempAlloc(op, int64(g.DType.Size())*int64(g.WLen()))
	if err != nil {
		return err
	}
	if err := d.conv(op, g, convBackwardFilter, x, s, dy, 0); err != nil {
		return err
	}
	return d.convertFilter(op, filterKernels[formatOf(g)].from, g, s, dwp)
}

// convertFilter launches convert kernel k from src to dst for the filter of geometry g.
func (d *Device) convertFilter(op string, k kernelID, g convGeom, src, dst uint64) error {
	return d.convert(op, k, src, dst, g.GroupCin(), g.KH*g.KW, int64(g.WLen()))
}

// convert launches convert kernel k from src to dst for the n elements of a (K, C, RS) tensor: a filter
// (Cout, Cin/groups, KH*KW) or an activation (N, C, H*W).
func (d *Device) convert(op string, k kernelID, src, dst uint64, c, rs int, n int64) error {
	return d.launch(op, k, d.blocksFor(n), 1).p(src).p(dst).i(c).i(rs).l(n).run()
}
