// This file holds the output stage of the exact mode: chroma upsampled as libjpeg-turbo does by default
// ("fancy" upsampling, a triangle filter), then converted to RGB.
//
// A component subsampled 2:1 in one direction is interpolated in it with weights 3/4 and 1/4 from the
// nearer and the farther sample; subsampled 2:1 in both, with 9/16, 3/16, 3/16 and 1/16. The rounding
// alternates between the two outputs of a sample (half up for one, just below half for the other) so
// that it does not drift. At the image's edges the missing neighbour is the edge sample itself: the
// first and last columns, and the first and last rows, of the component's real samples (not the padding
// of its last blocks). Other ratios (4:1:1, and 2:1 components only one or two samples wide) are
// replicated. Vertical interpolation needs a sample row of the MCU rows above and below, so the exact
// mode keeps three MCU rows of planes and emits each row once the next one is decoded.

package jpeg

// upsampling is how a component reaches the output resolution in the exact mode.
type upsampling uint8

const (
	upFull      upsampling = iota // not subsampled
	upH2V1                        // 2:1 horizontally: triangle filter along the row
	upH1V2                        // 2:1 vertically: triangle filter between rows
	upH2V2                        // 2:1 both ways
	upReplicate                   // any other ratio: each sample repeated
)

// exactSlots is the number of MCU rows of planes the exact mode keeps: the row being emitted and its
// neighbours above and below.
const exactSlots = 3

// chooseUpsampling sets each component's upsampling for the exact mode, as libjpeg-turbo chooses it.
func (d *Decoder) chooseUpsampling() {
	for i := range d.ncomp {
		c := &d.comps[i]
		switch {
		case c.sx == 0 && c.sy == 0:
			c.up = upFull
		case c.sx == 1 && c.sy == 0 && c.cw > 2:
			c.up = upH2V1
		case c.sx == 0 && c.sy == 1:
			c.up = upH1V2
		case c.sx == 1 && c.sy == 1 && c.cw > 2:
			c.up = upH2V2
		default:
			c.up = upReplicate
		}
	}
}

// sampleRow returns row r of component c's samples from the plane slots, r clamped to the component's
// real rows.
func (d *Decoder) sampleRow(c *component, r int) []uint8 {
	r = min(max(r, 0), c.ch-1)
	rows := c.v * 8
	off := c.planeOff + (r/rows%exactSlots)*c.slotSize + (r%rows)*c.planeStride
	return d.planes[off : off+c.planeStride]
}

// Rounding biases of the horizontal triangle filter in sixteenths, for the output left and right of its
// sample. The 2:1 horizontal filter of libjpeg rounds (3 near + far) / 4 with 1 and 2; with the column
// sums at 4 times the sample (near and far rows the same) that is 4 and 8 in sixteenths. Both ways it
// rounds with 8 and 7.
const (
	h2v1Left, h2v1Right = 4, 8
	h2v2Left, h2v2Right = 8, 7
)

// triangleInputs returns the rows that output row y of a component upsampled 2:1 horizontally
// interpolates: its sample row and the nearer of the rows above and below (the same row when it is
// not subsampled vertically), and the rounding biases.
func (d *Decoder) triangleInputs(c *component, y int) (near, far []uint8, left, right int32) {
	if c.up == upH2V1 {
		near = d.sampleRow(c, y)[:c.cw]
		return near, near, h2v1Left, h2v1Right
	}
	r := y >> 1
	nr := r - 1
	if y&1 == 1 {
		nr = r + 1
	}
	return d.sampleRow(c, r)[:c.cw], d.sampleRow(c, nr)[:c.cw], h2v2Left, h2v2Right
}

// upsampledRow returns output row y of component c at the full resolution, at least d.outW samples,
// computed into buf when the component is subsampled.
func (d *Decoder) upsampledRow(c *component, y int, buf []uint8) []uint8 {
	switch c.up {
	case upFull:
		return d.sampleRow(c, y)
	case upH2V1, upH2V2:
		near, far, left, right := d.triangleInputs(c, y)
		triangleRows(buf, near, far, left, right)
	case upH1V2:
		r, nr := y>>1, y>>1-1
		bias := int32(1)
		if y&1 == 1 {
			nr, bias = r+1, 2
		}
		blendRows(buf[:c.cw], d.sampleRow(c, r), d.sampleRow(c, nr), bias)
	default:
		row := d.sampleRow(c, y>>c.sy)
		for x := range buf[:d.outW] {
			buf[x] = row[x>>c.sx]
		}
	}
	return buf
}

// blendRows writes (3 near + far + bias) / 4 per sample: vertical interpolation, with bias 1 for the
// upper output row of a sample and 2 for the lower one.
func blendRows(out, near, far []uint8, bias int32) {
	far = far[:len(out)]
	near = near[:len(out)]
	for i := range out {
		out[i] = uint8((3*int32(near[i]) + int32(far[i]) + bias) >> 2)
	}
}

// triangleRows interpolates the n >= 2 samples of near to 2n samples in out. Each column sums 3 near +
// far; an output left of its sample is (3 this + the column to the left + left) / 16, one right of it
// (3 this + the column to the right + right) / 16, the edge columns standing in for their missing
// neighbours.
func triangleRows(out, near, far []uint8, left, right int32) {
	n := len(near)
	far = far[:n]
	out = out[:2*n]
	prev := 3*int32(near[0]) + int32(far[0])
	this := prev
	for i := range n {
		next := this
		if i+1 < n {
			next = 3*int32(near[i+1]) + int32(far[i+1])
		}
		out[2*i] = uint8((3*this + prev + left) >> 4)
		out[2*i+1] = uint8((3*this + next + right) >> 4)
		prev, this = this, next
	}
}

// yccTriangleRows is triangleRows on both chroma planes fused with yccRow, for the common layouts
// (4:2:0 and 4:2:2): no upsampled rows are written, each pixel's chroma goes straight to the tables.
// y holds 2n-1 or 2n samples for the n chroma samples.
func yccTriangleRows(out, y, cbNear, cbFar, crNear, crFar []uint8, left, right int32) {
	n, w := len(cbNear), len(y)
	if n < 1 || w > 2*n || w < 2*n-1 || len(out) < 3*w || len(cbFar) < n || len(crNear) < n || len(crFar) < n {
		panic("jpeg: fused upsampling row sizes do not match")
	}
	cbFar, crNear, crFar = cbFar[:n], crNear[:n], crFar[:n]
	pb, pr := 3*int32(cbNear[0])+int32(cbFar[0]), 3*int32(crNear[0])+int32(crFar[0])
	b, r := pb, pr
	// Every chroma sample but the last has a right neighbour and two pixels.
	for i := range n - 1 {
		nb := 3*int32(cbNear[i+1]) + int32(cbFar[i+1])
		nr := 3*int32(crNear[i+1]) + int32(crFar[i+1])
		yy := y[2*i : 2*i+2 : 2*i+2]
		o := out[6*i : 6*i+6 : 6*i+6]
		yccPut(o[0:3], yy[0], uint8((3*b+pb+left)>>4), uint8((3*r+pr+left)>>4))
		yccPut(o[3:6], yy[1], uint8((3*b+nb+right)>>4), uint8((3*r+nr+right)>>4))
		pb, b, pr, r = b, nb, r, nr
	}
	x := 2 * (n - 1)
	yccPut(out[3*x:3*x+3], y[x], uint8((3*b+pb+left)>>4), uint8((3*r+pr+left)>>4))
	if x+1 < w {
		yccPut(out[3*x+3:3*x+6], y[x+1], uint8((4*b+right)>>4), uint8((4*r+right)>>4))
	}
}

// yccPut converts one pixel into o[0:3] through the tables of yccPairs.
func yccPut(o []uint8, y, cb, cr uint8) {
	v := int32(y)
	o = o[:3]
	o[0] = clip[(v+termR[cr])&1023]
	o[1] = clip[(v+(termGb[cb]+termGr[cr])>>16)&1023]
	o[2] = clip[(v+termB[cb])&1023]
}

// emitRowExact converts MCU row my into its output rows of dst, upsampling each component from the
// plane slots, which must hold MCU rows my-1 (if any), my and my+1 (if any).
func (d *Decoder) emitRowExact(my int, dst *Dst) {
	rows := d.vmax * 8
	top := my * rows
	w := d.outW
	c0, c1, c2, c3 := &d.comps[0], &d.comps[1], &d.comps[2], &d.comps[3]
	fused := d.color == colorYCbCr && c0.up == upFull && c1.up == c2.up && c1.cw == c2.cw &&
		(c1.up == upH2V1 || c1.up == upH2V2)
	stride := len(d.upRows) / 4
	buf := func(i int) []uint8 { return d.upRows[i*stride : (i+1)*stride] }
	for y := top; y < min(top+rows, d.outH); y++ {
		out := dst.Pix[y*w*3 : (y+1)*w*3]
		p0 := d.upsampledRow(c0, y, buf(0))[:w]
		switch {
		case fused:
			bn, bf, left, right := d.triangleInputs(c1, y)
			rn, rf, _, _ := d.triangleInputs(c2, y)
			yccTriangleRows(out, p0, bn, bf, rn, rf, left, right)
		case d.color == colorGray:
			grayRow(out, p0)
		case d.color == colorYCbCr:
			yccRow(out, p0, d.upsampledRow(c1, y, buf(1))[:w], d.upsampledRow(c2, y, buf(2))[:w])
		case d.color == colorRGB:
			planarRow(out, p0, d.upsampledRow(c1, y, buf(1))[:w], d.upsampledRow(c2, y, buf(2))[:w], 0, 0, 0)
		default:
			inkRow(out, [4][]uint8{p0, d.upsampledRow(c1, y, buf(1))[:w], d.upsampledRow(c2, y, buf(2))[:w],
				d.upsampledRow(c3, y, buf(3))[:w]}, [4]uint{}, d.color == colorYCCK)
		}
	}
}
