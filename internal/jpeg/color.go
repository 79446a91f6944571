// This file holds the conversion of a row of MCUs from component planes to interleaved RGB, with chroma
// upsampled by replication as image/jpeg's YCbCr images are.

package jpeg

import "unsafe"

// JFIF YCbCr to RGB in 16.16 fixed point, rounded to nearest and clamped:
//
//	R = Y + 1.402 (Cr-128)
//	G = Y - 0.344136 (Cb-128) - 0.714136 (Cr-128)
//	B = Y + 1.772 (Cb-128)
const (
	fixCrR = 91881  // 1.402 * 2^16
	fixCbG = 22554  // 0.344136 * 2^16
	fixCrG = 46802  // 0.714136 * 2^16
	fixCbB = 116130 // 1.772 * 2^16
	fixY   = 1 << 15
)

// clampRGB clamps a 16.16 colour value shifted down to [0, 255].
func clampRGB(v int32) uint8 {
	if uint32(v) <= 255 {
		return uint8(v)
	}
	return uint8(^(v >> 31))
}

// emitRow converts the planes of MCU row my into its output rows of dst.
func (d *Decoder) emitRow(my int, dst *Dst) {
	rows := d.vmax * d.bs
	top := my * rows
	y0, y1 := max(top, d.region.Min.Y), min(top+rows, d.region.Max.Y)
	x0, x1 := d.region.Min.X, d.region.Max.X
	w := x1 - x0
	planes := d.planes
	// row is the part of plane row ly of c under the region's columns; x0 is a multiple of every
	// component's subsampling, so it starts on a whole sample.
	row := func(c *component, ly int) []uint8 {
		off := c.planeOff + (ly>>c.sy)*c.planeStride
		return planes[off+x0>>c.sx : off+c.planeStride]
	}
	c0, c1, c2, c3 := &d.comps[0], &d.comps[1], &d.comps[2], &d.comps[3]
	for y := y0; y < y1; y++ {
		ly := y - top
		out := dst.Pix[(y*d.outW+x0)*3 : (y*d.outW+x1)*3]
		switch {
		case d.color == colorCMYK || d.color == colorYCCK:
			inkRow(out, [4][]uint8{row(c0, ly), row(c1, ly), row(c2, ly), row(c3, ly)},
				[4]uint{c0.sx, c1.sx, c2.sx, c3.sx}, d.color == colorYCCK)
		case d.color == colorGray:
			grayRow(out, row(c0, ly)[:w])
		case d.color == colorRGB:
			planarRow(out, row(c0, ly), row(c1, ly), row(c2, ly), c0.sx, c1.sx, c2.sx)
		case c0.sx == 0 && c1.sx == 0 && c2.sx == 0:
			yccRow(out, row(c0, ly)[:w], row(c1, ly)[:w], row(c2, ly)[:w])
		case c0.sx == 0 && c1.sx == 1 && c2.sx == 1:
			yccRowHalf(out, row(c0, ly)[:w], row(c1, ly)[:(w+1)/2], row(c2, ly)[:(w+1)/2])
		default:
			yccRowAny(out, row(c0, ly), row(c1, ly), row(c2, ly), c0.sx, c1.sx, c2.sx)
		}
	}
}

// The row converters advance their slices instead of indexing so that the compiler can prove every access
// in bounds: a length test per pixel replaces three or four bounds checks.

func grayRow(out, g []uint8) {
	for _, v := range g {
		if len(out) < 3 {
			return
		}
		out[0], out[1], out[2] = v, v, v
		out = out[3:]
	}
}

// planarRow interleaves R, G and B planes (Adobe files with no colour transform); each may be subsampled.
func planarRow(out, r, g, b []uint8, sr, sg, sb uint) {
	for i := range len(out) / 3 {
		o := out[3*i : 3*i+3 : 3*i+3]
		o[0], o[1], o[2] = r[i>>sr], g[i>>sg], b[i>>sb]
	}
}

// yccPixel converts one pixel into out[0:3].
func yccPixel(out []uint8, y, cb, cr uint8) {
	b, r := int32(cb)-128, int32(cr)-128
	yy := int32(y)<<16 + fixY
	out = out[:3]
	out[0] = clampRGB((yy + fixCrR*r) >> 16)
	out[1] = clampRGB((yy - fixCbG*b - fixCrG*r) >> 16)
	out[2] = clampRGB((yy + fixCbB*b) >> 16)
}

// yccRow converts a row with full-width chroma (4:4:4, 4:4:0, and upsampled chroma in the exact mode)
// through the tables of yccPairs.
func yccRow(out, y, cb, cr []uint8) {
	n := len(y)
	out, cb, cr = out[:3*n], cb[:n], cr[:n]
	tR, tB, tGb, tGr, cl := &termR, &termB, &termGb, &termGr, &clip
	for i, yv := range y {
		b, r, v := cb[i], cr[i], int32(yv)
		o := out[3*i : 3*i+3 : 3*i+3]
		o[0] = cl[(v+tR[r])&1023]
		o[1] = cl[(v+(tGb[b]+tGr[r])>>16)&1023]
		o[2] = cl[(v+tB[b])&1023]
	}
}

// The chroma terms of the conversion per chroma sample, and a clamping table: with them a pixel costs
// three additions and three loads. termR and termB are the rounded red and blue offsets plus clipBias;
// the green one depends on both chroma samples, so termGb and termGr hold its 16.16 parts (rounding and
// bias included), added and then shifted. The results are exactly those of yccPixel.
var (
	termR, termB, termGb, termGr [256]int32
	// clip[v+clipBias] is v clamped to [0, 255], for every v the terms can give (-227 to 482).
	clip [1024]uint8
)

const clipBias = 256

func init() {
	for i := range 256 {
		c := int32(i) - 128
		termR[i] = (fixCrR*c+fixY)>>16 + clipBias
		termB[i] = (fixCbB*c+fixY)>>16 + clipBias
		termGb[i] = -fixCbG * c
		termGr[i] = fixY - fixCrG*c + clipBias<<16
	}
	for i := range clip {
		clip[i] = uint8(min(max(i-clipBias, 0), 255))
	}
}

// yccRowHalf converts a row whose chroma has half the width (4:2:0, 4:2:2): each chroma sample's terms
// are looked up once for its two pixels.
func yccRowHalf(out, y, cb, cr []uint8) {
	w := len(y)
	n := (w + 1) / 2
	if len(out) < 3*w || len(cb) < n || len(cr) < n {
		panic("jpeg: colour conversion row too short")
	}
	if w >= 2 {
		yccPairs(unsafe.Pointer(&out[0]), unsafe.Pointer(&y[0]), unsafe.Pointer(&cb[0]), unsafe.Pointer(&cr[0]), w/2)
	}
	if w%2 == 1 {
		yccPixel(out[3*(w-1):], y[w-1], cb[w/2], cr[w/2])
	}
}

// yccPairs converts n pixel pairs for yccRowHalf, which has checked the lengths: out holds 6n bytes, y
// 2n, cb and cr n each. Bounds checks on six stores and six loads would cost more than the conversion.
func yccPairs(out, y, cb, cr unsafe.Pointer, n int) {
	tR, tB, tGb, tGr, cl := &termR, &termB, &termGb, &termGr, &clip
	for j := range n {
		b, r := *(*uint8)(unsafe.Add(cb, j)), *(*uint8)(unsafe.Add(cr, j))
		dr, db, dg := tR[r], tB[b], (tGb[b]+tGr[r])>>16
		yy := (*[2]uint8)(unsafe.Add(y, 2*j))
		o := (*[6]uint8)(unsafe.Add(out, 6*j))
		y0, y1 := int32(yy[0]), int32(yy[1])
		o[0], o[1], o[2] = cl[(y0+dr)&1023], cl[(y0+dg)&1023], cl[(y0+db)&1023]
		o[3], o[4], o[5] = cl[(y1+dr)&1023], cl[(y1+dg)&1023], cl[(y1+db)&1023]
	}
}

// yccRowAny converts a row with any power-of-two subsampling of any component.
func yccRowAny(out, y, cb, cr []uint8, sy, sb, sr uint) {
	for i := range len(out) / 3 {
		yccPixel(out[3*i:], y[i>>sy], cb[i>>sb], cr[i>>sr])
	}
}

// div255 is round(v / 255) for 0 <= v <= 255*255.
func div255(v uint32) uint8 {
	v += 128
	return uint8((v + v>>8) >> 8)
}

// inkRow converts a row of Adobe CMYK or YCCK planes p (each subsampled by 2^s[i]) to RGB. Adobe stores
// the inks inverted, so a stored sample is 255 minus the ink: R = (255-C)(255-K)/255 is the stored C
// times the stored K over 255. In YCCK the first three planes are YCbCr whose RGB is 255 minus the
// stored C, M, Y, as libjpeg and image/jpeg read it.
func inkRow(out []uint8, p [4][]uint8, s [4]uint, ycck bool) {
	for i := range len(out) / 3 {
		o := out[3*i : 3*i+3 : 3*i+3]
		c, m, y, k := p[0][i>>s[0]], p[1][i>>s[1]], p[2][i>>s[2]], uint32(p[3][i>>s[3]])
		if ycck {
			yccPixel(o, c, m, y)
			c, m, y = 255-o[0], 255-o[1], 255-o[2]
		}
		o[0] = div255(uint32(c) * k)
		o[1] = div255(uint32(m) * k)
		o[2] = div255(uint32(y) * k)
	}
}
