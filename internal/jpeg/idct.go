// This file holds the inverse DCTs (T.81 A.3.3): the full 8x8 one and the reduced ones for 1/2, 1/4 and
// 1/8 scale. Each reads a block of dequantised coefficients, already multiplied by the per-frequency
// weights its transform expects (see prescale), and writes level-shifted, clamped samples.
//
// The full transform is a scaled one (Arai, Agui and Nakajima's idea): if coefficient k is first
// multiplied by cos(k*pi/16) (cos(pi/4) for the DC), the 8-point transform needs only five
// multiplications, and those weights cost nothing once folded into the quantisation table. The odd half
// is checked against the definition in TestIDCTPoints, the whole transforms in TestIDCTAccuracy.
//
// The reduced transforms are exact box filters: averaging 2 (or 4) neighbouring outputs of the 8-point
// transform multiplies each cosine by cos(u*pi/16) (or a mix of two cosines) and folds coefficients 5-7
// onto 3-1, so a 1/2-scale block is a 4-point transform of X[u]*cos(u*pi/16) - X[8-u]*cos((8-u)*pi/16)
// and a 1/4-scale block needs no multiplication at all.

package jpeg

import "math"

// Fixed point. Dequantised coefficients carry qBits fraction bits (a valid coefficient is below 2^11, so
// they fit an int32 with room to spare); cosine constants carry kBits; the values passed from the column
// to the row pass carry passBits.
const (
	qBits    = 15
	kBits    = 13
	passBits = 10

	colShift = qBits - passBits // column pass output down to passBits
	colRound = 1 << (colShift - 1)

	// The 2-D transform is 1/4 of the row pass of the column pass; outShift takes the row pass to
	// samples. rowBias, added to the DC input of the row pass, is the +128 level shift and the rounding.
	outShift = passBits + 2
	rowBias  = 128<<outShift + 1<<(outShift-1)
)

// Constants times 2^kBits, rounded.
const (
	kSqrt2  = 11585 // sqrt(2)
	k2C2    = 15137 // 2 cos(2pi/16)
	k2C2mC6 = 8867  // 2 (cos(2pi/16) - cos(6pi/16))
	k2C2pC6 = 21407 // 2 (cos(2pi/16) + cos(6pi/16))
	kC4     = 5793  // cos(4pi/16)
	kC6     = 3135  // cos(6pi/16)
	kC2mC6  = 4433  // cos(2pi/16) - cos(6pi/16)
	kC2pC6  = 10703 // cos(2pi/16) + cos(6pi/16)
)

// mulK multiplies x by a kBits constant.
func mulK(x, k int64) int64 {
	return (x * k) >> kBits
}

// prescale writes the quantisation table q (natural order) for the inverse DCT at scale s: entry (u, v)
// is q times w(u) w(v) times 2^qBits, with the per-frequency weights w that each transform expects.
func prescale(dst *[64]int32, q *[64]uint16, s int) {
	w := &scaleWeights[0]
	switch s {
	case 2:
		w = &scaleWeights[1]
	case 4:
		w = &scaleWeights[2]
	case 8:
		w = &scaleWeights[3]
	}
	for u := range 8 {
		for v := range 8 {
			dst[u*8+v] = int32(math.Round(float64(q[u*8+v]) * w[u] * w[v] * (1 << qBits)))
		}
	}
}

// scaleWeights are the 1-D weights of prescale for scales 1, 2, 4 and 8.
var scaleWeights = func() (w [4][8]float64) {
	c := func(k int) float64 { return math.Cos(float64(k) * math.Pi / 16) }
	// Full size: the scaled transform's cos(k pi/16), with the DC's 1/sqrt(2) = cos(4pi/16).
	w[0] = [8]float64{c(4), c(1), c(2), c(3), c(4), c(5), c(6), c(7)}
	// 1/2: the DC's 1/sqrt(2), and averaging pairs weights frequency u by cos(u pi/16); coefficient 4
	// vanishes at the pair centres.
	w[1] = [8]float64{c(4), c(1), c(2), c(3), 0, c(5), c(6), c(7)}
	// 1/4: averaging fours weights u by (cos(3u pi/16) + cos(u pi/16))/2; besides the DC only odd u
	// survive, all with cos(pi/4) and a sign, so the transform is a sum and a difference.
	a := func(u int) float64 { return c(4) * (c(3*u) + c(u)) / 2 }
	w[2] = [8]float64{c(4), a(1), 0, -a(3), 0, -a(5), 0, a(7)}
	// 1/8: the mean of the block is the DC over 8.
	w[3] = [8]float64{c(4), 0, 0, 0, 0, 0, 0, 0}
	return w
}()

// clamp8 returns v clamped to [0, 255]. Out-of-range values are rare, so the branch predicts well; then
// ^(v >> 63) is 0 for negative v and all ones for large v.
func clamp8(v int64) uint8 {
	if uint64(v) <= 255 {
		return uint8(v)
	}
	return uint8(^(v >> 63))
}

// dcSample is the sample of a block that holds only its (dequantised, weighted) DC, at any scale, as the
// full transforms compute it.
func dcSample(dc int32) uint8 {
	t := (int64(dc) + colRound) >> colShift
	return clamp8((t + rowBias) >> outShift)
}

// fillBlock writes the n x n samples of a block that holds only its DC.
func fillBlock(out []uint8, stride, n int, v uint8) {
	for y := range n {
		row := out[y*stride : y*stride+n]
		for x := range row {
			row[x] = v
		}
	}
}

// dequantize multiplies the coefficients of a block from the coefficient buffer by the prescaled table and
// returns 1 when only the DC is non-zero, 64 otherwise (what decodeBlock would have returned).
func dequantize(dst *[64]int32, src *[64]int16, q *[64]int32) int {
	dst[0] = int32(src[0]) * q[0]
	var ac int16
	for i := 1; i < 64; i++ {
		dst[i] = int32(src[i]) * q[i]
		ac |= src[i]
	}
	if ac == 0 {
		return 1
	}
	return 64
}

// idct8 writes the 8x8 samples of blk to out. Columns whose AC coefficients are all zero (many of them in
// a photograph) skip the column transform, and rows skip the row transform when only column 0 is left.
func idct8(out []uint8, stride int, blk *[64]int32) {
	var tmp [64]int32
	var cols uint // bit v set when column v of tmp is not all zero
	for v := range 8 {
		if blk[8+v]|blk[16+v]|blk[24+v]|blk[32+v]|blk[40+v]|blk[48+v]|blk[56+v] == 0 {
			dc := (blk[v] + colRound) >> colShift
			tmp[v], tmp[8+v], tmp[16+v], tmp[24+v] = dc, dc, dc, dc
			tmp[32+v], tmp[40+v], tmp[48+v], tmp[56+v] = dc, dc, dc, dc
			if dc != 0 {
				cols |= 1 << v
			}
			continue
		}
		cols |= 1 << v
		// idct8Points, by hand: the compiler does not inline it.
		z0, z1, z2, z3 := int64(blk[v])+colRound, int64(blk[8+v]), int64(blk[16+v]), int64(blk[24+v])
		z4, z5, z6, z7 := int64(blk[32+v]), int64(blk[40+v]), int64(blk[48+v]), int64(blk[56+v])
		a, b := z0+z4, z0-z4
		s := z2 + z6
		d := mulK(z2-z6, kSqrt2) - s
		e0, e3 := a+s, a-s
		e1, e2 := b+d, b-d
		s17, d17 := z1+z7, z1-z7
		s53, d53 := z5+z3, z5-z3
		o0 := s17 + s53
		m := mulK(d53+d17, k2C2)
		o1 := m - mulK(d53, k2C2pC6) - o0
		o2 := mulK(s17-s53, kSqrt2) - o1
		o3 := m - mulK(d17, k2C2mC6) - o2
		x0, x1, x2, x3, x4, x5, x6, x7 := e0+o0, e1+o1, e2+o2, e3+o3, e3-o3, e2-o2, e1-o1, e0-o0
		tmp[v] = int32(x0 >> colShift)
		tmp[8+v] = int32(x1 >> colShift)
		tmp[16+v] = int32(x2 >> colShift)
		tmp[24+v] = int32(x3 >> colShift)
		tmp[32+v] = int32(x4 >> colShift)
		tmp[40+v] = int32(x5 >> colShift)
		tmp[48+v] = int32(x6 >> colShift)
		tmp[56+v] = int32(x7 >> colShift)
	}

	if cols <= 1 {
		// Only column 0 is left: every row is flat.
		for u := range 8 {
			row := out[u*stride : u*stride+8]
			s := clamp8((int64(tmp[8*u]) + rowBias) >> outShift)
			for x := range row {
				row[x] = s
			}
		}
		return
	}
	for u := range 8 {
		r := (*[8]int32)(tmp[8*u : 8*u+8])
		// idct8Points again, by hand.
		z0, z1, z2, z3 := int64(r[0])+rowBias, int64(r[1]), int64(r[2]), int64(r[3])
		z4, z5, z6, z7 := int64(r[4]), int64(r[5]), int64(r[6]), int64(r[7])
		a, b := z0+z4, z0-z4
		s := z2 + z6
		d := mulK(z2-z6, kSqrt2) - s
		e0, e3 := a+s, a-s
		e1, e2 := b+d, b-d
		s17, d17 := z1+z7, z1-z7
		s53, d53 := z5+z3, z5-z3
		o0 := s17 + s53
		m := mulK(d53+d17, k2C2)
		o1 := m - mulK(d53, k2C2pC6) - o0
		o2 := mulK(s17-s53, kSqrt2) - o1
		o3 := m - mulK(d17, k2C2mC6) - o2
		x0, x1, x2, x3, x4, x5, x6, x7 := e0+o0, e1+o1, e2+o2, e3+o3, e3-o3, e2-o2, e1-o1, e0-o0
		o := out[u*stride : u*stride+8]
		o[0] = clamp8(x0 >> outShift)
		o[1] = clamp8(x1 >> outShift)
		o[2] = clamp8(x2 >> outShift)
		o[3] = clamp8(x3 >> outShift)
		o[4] = clamp8(x4 >> outShift)
		o[5] = clamp8(x5 >> outShift)
		o[6] = clamp8(x6 >> outShift)
		o[7] = clamp8(x7 >> outShift)
	}
}

// idct8Points is the scaled 8-point inverse DCT: z[k] must be X[k] cos(k pi/16) (X[0] and X[4] times
// cos(pi/4)); the result is sum over k of w(k) X[k] cos((2n+1) k pi/16), w(0) = 1/sqrt(2), w(k) = 1.
// idct8 repeats its body in both passes, since the compiler will not inline it; the tests check this
// copy against the definition and idct8 against a floating-point transform.
func idct8Points(z0, z1, z2, z3, z4, z5, z6, z7 int64) (x0, x1, x2, x3, x4, x5, x6, x7 int64) {
	// Even half, a 4-point transform: z0 and z4 need no multiplication; for z2 and z6 the sum gives
	// the c2/c6 rotation's first output and sqrt(2) times the difference, less the sum, the second.
	a, b := z0+z4, z0-z4
	s := z2 + z6
	d := mulK(z2-z6, kSqrt2) - s
	e0, e3 := a+s, a-s
	e1, e2 := b+d, b-d

	// Odd half: sums and differences of the mirrored pairs, four multiplications.
	s17, d17 := z1+z7, z1-z7
	s53, d53 := z5+z3, z5-z3
	o0 := s17 + s53
	m := mulK(d53+d17, k2C2)
	o1 := m - mulK(d53, k2C2pC6) - o0
	o2 := mulK(s17-s53, kSqrt2) - o1
	o3 := m - mulK(d17, k2C2mC6) - o2

	return e0 + o0, e1 + o1, e2 + o2, e3 + o3, e3 - o3, e2 - o2, e1 - o1, e0 - o0
}

// idct4 writes the 4x4 samples of blk at 1/2 scale, each the mean of 2x2 samples of the full transform
// (before rounding). Coefficient row and column 4 do not contribute.
func idct4(out []uint8, stride int, blk *[64]int32) {
	var tmp [32]int32 // 4 rows of 8 columns
	for v := range 8 {
		if v == 4 {
			continue
		}
		g0, g1, g2, g3 := idct4Points(int64(blk[v])<<kBits+(1<<(kBits+colShift-1)),
			int64(blk[8+v])-int64(blk[56+v]), int64(blk[16+v])-int64(blk[48+v]), int64(blk[24+v])-int64(blk[40+v]))
		tmp[v] = int32(g0 >> (kBits + colShift))
		tmp[8+v] = int32(g1 >> (kBits + colShift))
		tmp[16+v] = int32(g2 >> (kBits + colShift))
		tmp[24+v] = int32(g3 >> (kBits + colShift))
	}
	for u := range 4 {
		r := (*[8]int32)(tmp[8*u : 8*u+8])
		g0, g1, g2, g3 := idct4Points((int64(r[0])+rowBias)<<kBits,
			int64(r[1])-int64(r[7]), int64(r[2])-int64(r[6]), int64(r[3])-int64(r[5]))
		o := out[u*stride : u*stride+4]
		o[0] = clamp8(g0 >> (kBits + outShift))
		o[1] = clamp8(g1 >> (kBits + outShift))
		o[2] = clamp8(g2 >> (kBits + outShift))
		o[3] = clamp8(g3 >> (kBits + outShift))
	}
}

// idct4Points is the 4-point inverse DCT of y0 (already times 2^kBits) and y1..y3; the results carry
// kBits more fraction bits than y1..y3.
func idct4Points(y0, y1, y2, y3 int64) (g0, g1, g2, g3 int64) {
	c := kC4 * y2
	ev0, ev1 := y0+c, y0-c
	t := kC6 * (y1 + y3)
	od0 := t + kC2mC6*y1 // c2 y1 + c6 y3
	od1 := t - kC2pC6*y3 // c6 y1 - c2 y3
	return ev0 + od0, ev1 + od1, ev1 - od1, ev0 - od0
}

// idct2 writes the 2x2 samples of blk at 1/4 scale, each the mean of 4x4 samples of the full transform.
// With the weights in the table, a column is the DC plus or minus the sum of the odd coefficients.
func idct2(out []uint8, stride int, blk *[64]int32) {
	var tmp [16]int32 // 2 rows of 8 columns; the even ones other than 0 stay zero
	for _, v := range [5]int{0, 1, 3, 5, 7} {
		v &= 7
		s := int64(blk[v]) + colRound
		d := int64(blk[8+v]) + int64(blk[24+v]) + int64(blk[40+v]) + int64(blk[56+v])
		tmp[v] = int32((s + d) >> colShift)
		tmp[8+v] = int32((s - d) >> colShift)
	}
	for u := range 2 {
		r := (*[8]int32)(tmp[8*u : 8*u+8])
		s := int64(r[0]) + rowBias
		d := int64(r[1]) + int64(r[3]) + int64(r[5]) + int64(r[7])
		o := out[u*stride : u*stride+2]
		o[0] = clamp8((s + d) >> outShift)
		o[1] = clamp8((s - d) >> outShift)
	}
}
