// This file holds the inverse DCT of the exact mode: the same integer arithmetic as libjpeg-turbo's
// default ("accurate integer", JDCT_ISLOW) transform, so that a decode equals libjpeg's to the bit.
//
// The transform is the separable 8-point factorisation of Loeffler, Ligtenberg and Moschytz (1989): the
// even half is a butterfly on X0, X4 and a rotation of X2, X6 by 6pi/16; the odd half shares one
// multiplication by sqrt(2) cos(3pi/16) between the four outputs and needs eight more. Its constants are
// sqrt(2) times sums of cosines, rounded to 13 fraction bits. Every product and sum is exact in 64 bits,
// so only two roundings shape the result: the column pass keeps 2 fraction bits, the row pass rounds to
// the sample; any arrangement of the same integer sums gives the same bits.

package jpeg

// Fixed point of the accurate transform.
const (
	accBits   = 13 // fraction bits of the constants
	accPass   = 2  // fraction bits kept between the column and the row pass
	accShift1 = accBits - accPass
	accShift2 = accBits + accPass + 3 // each pass leaves a factor sqrt(8), the two together 8
)

// Constants times 2^accBits, rounded; c(k) is cos(k pi/16). TestAccurateIDCTConstants checks them.
const (
	accC6           = 4433  // sqrt2 c6
	accC2mC6        = 6270  // sqrt2 (c2 - c6)
	accC2pC6        = 15137 // sqrt2 (c2 + c6)
	accC3           = 9633  // sqrt2 c3
	accC1pC3mC5mC7  = 12299 // sqrt2 (c1 + c3 - c5 - c7)
	accC1pC3mC5pC7  = 16819 // sqrt2 (c1 + c3 - c5 + c7)
	accC1pC3pC5mC7  = 25172 // sqrt2 (c1 + c3 + c5 - c7)
	accMC1pC3pC5mC7 = 2446  // sqrt2 (-c1 + c3 + c5 - c7)
	accC3mC7        = 7373  // sqrt2 (c3 - c7)
	accC1pC3        = 20995 // sqrt2 (c1 + c3)
	accC3pC5        = 16069 // sqrt2 (c3 + c5)
	accC3mC5        = 3196  // sqrt2 (c3 - c5)
)

// accLimit maps a row-pass result v (level-shifted: 0 is mid-grey) through v & 1023 to the sample: v+128
// clamped to [0, 255] for -512 <= v < 512. Larger values, which only corrupt data produces, wrap around
// as they do in libjpeg's range-limiting table.
var accLimit = func() (t [1024]uint8) {
	for i := range t {
		v := i
		if v >= 512 {
			v -= 1024
		}
		t[i] = uint8(min(max(v+128, 0), 255))
	}
	return t
}()

// accurate8 is the 8-point transform of x (each multiplied by 2^accBits), before descaling, in the
// output order 0..7. The even half's inputs x0 and x4 enter shifted; bias is added to both sums, which
// carries the pass's rounding.
func accurate8(x0, x1, x2, x3, x4, x5, x6, x7, bias int64) (y0, y1, y2, y3, y4, y5, y6, y7 int64) {
	// Even half: X0 +- X4, and the rotation of X2 and X6.
	s := (x0+x4)<<accBits + bias
	d := (x0-x4)<<accBits + bias
	r := accC6 * (x2 + x6)
	p := r + accC2mC6*x2
	q := r - accC2pC6*x6
	e0, e3 := s+p, s-p
	e1, e2 := d+q, d-q

	// Odd half: one shared product, then each output's share of the pairs (x1, x7), (x3, x5),
	// (x3, x7) and (x1, x5).
	m := accC3 * (x1 + x3 + x5 + x7)
	a17 := -accC3mC7 * (x1 + x7)
	a35 := -accC1pC3 * (x3 + x5)
	b37 := m - accC3pC5*(x3+x7)
	b15 := m - accC3mC5*(x1+x5)
	o0 := accC1pC3mC5mC7*x1 + a17 + b15
	o1 := accC1pC3pC5mC7*x3 + a35 + b37
	o2 := accC1pC3mC5pC7*x5 + a35 + b15
	o3 := accMC1pC3pC5mC7*x7 + a17 + b37

	return e0 + o0, e1 + o1, e2 + o2, e3 + o3, e3 - o3, e2 - o2, e1 - o1, e0 - o0
}

// idctAccurate writes the 8x8 samples of blk (dequantised coefficients, natural order, not prescaled)
// to out. Columns and rows with no AC energy take the short way, which gives the same values.
func idctAccurate(out []uint8, stride int, blk *[64]int32) {
	var ws [64]int32
	for v := range 8 {
		if blk[8+v]|blk[16+v]|blk[24+v]|blk[32+v]|blk[40+v]|blk[48+v]|blk[56+v] == 0 {
			dc := blk[v] << accPass
			for u := range 8 {
				ws[8*u+v] = dc
			}
			continue
		}
		y0, y1, y2, y3, y4, y5, y6, y7 := accurate8(int64(blk[v]), int64(blk[8+v]), int64(blk[16+v]),
			int64(blk[24+v]), int64(blk[32+v]), int64(blk[40+v]), int64(blk[48+v]), int64(blk[56+v]),
			1<<(accShift1-1))
		// The column pass's results are 32-bit in libjpeg too.
		ws[v], ws[8+v], ws[16+v], ws[24+v] = int32(y0>>accShift1), int32(y1>>accShift1), int32(y2>>accShift1), int32(y3>>accShift1)
		ws[32+v], ws[40+v], ws[48+v], ws[56+v] = int32(y4>>accShift1), int32(y5>>accShift1), int32(y6>>accShift1), int32(y7>>accShift1)
	}
	for u := range 8 {
		r := (*[8]int32)(ws[8*u : 8*u+8])
		o := out[u*stride : u*stride+8]
		if r[1]|r[2]|r[3]|r[4]|r[5]|r[6]|r[7] == 0 {
			s := accLimit[((int64(r[0])+1<<(accShift2-accBits-1))>>(accShift2-accBits))&1023]
			for x := range o {
				o[x] = s
			}
			continue
		}
		y0, y1, y2, y3, y4, y5, y6, y7 := accurate8(int64(r[0]), int64(r[1]), int64(r[2]), int64(r[3]),
			int64(r[4]), int64(r[5]), int64(r[6]), int64(r[7]), 1<<(accShift2-1))
		lim := &accLimit
		o[0], o[1], o[2], o[3] = lim[(y0>>accShift2)&1023], lim[(y1>>accShift2)&1023], lim[(y2>>accShift2)&1023], lim[(y3>>accShift2)&1023]
		o[4], o[5], o[6], o[7] = lim[(y4>>accShift2)&1023], lim[(y5>>accShift2)&1023], lim[(y6>>accShift2)&1023], lim[(y7>>accShift2)&1023]
	}
}

// dcSampleAccurate is the sample of a block whose only non-zero coefficient is the dequantised DC dc,
// as idctAccurate computes it.
func dcSampleAccurate(dc int32) uint8 {
	return accLimit[((int64(dc<<accPass)+1<<(accShift2-accBits-1))>>(accShift2-accBits))&1023]
}
