// This file holds the scan decoders: the streaming one for single-scan sequential JPEGs, and the ones
// that fill the coefficient buffer for progressive (T.81 G.1.2) and multi-scan sequential JPEGs.

package jpeg

import mathbits "math/bits"

// extendTop returns the coefficient coded by the top s bits of bits (s >= 1): a leading 0 bit marks the
// negative values, which are the bits minus 2^s - 1.
func extendTop(bits uint64, s uint) int32 {
	m := int32(bits >> ((64 - s) & 63)) // the mask tells the compiler the shift is below 64
	neg := int32(bits>>63) ^ 1
	return m - neg<<s + neg
}

// decodeBlock decodes one block of a sequential scan into blk, in natural order and multiplied by q; blk
// must be zero on entry. Dequantising here costs a multiplication per non-zero coefficient, not 64. It
// returns the zig-zag index after the last coefficient it decoded (1 when only the DC is set), or -1 at a
// code that is in neither table.
func decodeBlock[T int16 | int32](br *bitReader, blk *[64]T, c *component, q *[64]T) int {
	bits, nbits := br.bits, br.nbits
	if nbits < 32 {
		bits, nbits = br.refill(bits, nbits)
	}

	dc := c.dc
	var diff int32
	if e := dc.fast[bits>>(64-lookBits)]; e != 0 {
		n := uint(e) & 31
		bits <<= n
		nbits -= n
		diff = e >> 16
		if s := uint(e>>12) & 15; s != 0 {
			diff = extendTop(bits, s)
			bits <<= s & 15
			nbits -= s
		}
	} else {
		sym, n, ok := dc.decodeSlow(bits)
		if !ok {
			return -1
		}
		bits <<= n & 31
		nbits -= n
		if s := uint(sym); s != 0 {
			diff = extendTop(bits, s)
			bits <<= s & 15
			nbits -= s
		}
	}
	c.pred += diff
	blk[0] = T(c.pred) * q[0]

	ac := c.ac
	fast := &ac.fast // checked for nil once, not per coefficient
	k := 1
	for k < 64 {
		if nbits < 32 {
			bits, nbits = br.refill(bits, nbits)
		}
		e := fast[bits>>(64-lookBits)]
		if e == 0 {
			// A code longer than lookBits: rebuild the entry the table would have had.
			sym, n, ok := ac.decodeSlow(bits)
			if !ok {
				return -1
			}
			e = int32(sym&15)<<12 | int32(sym>>4)<<8 | int32(n)
		}
		n := uint(e) & 31
		bits <<= n
		nbits -= n
		r := int(e>>8) & 15
		k += r
		if v := e >> 16; v != 0 {
			z := zigzag[k&63] & 63
			blk[z] = T(v) * q[z]
			k++
			continue
		}
		s := uint(e>>12) & 15
		if s == 0 {
			if r == 15 { // ZRL: sixteen zeros
				k++
				continue
			}
			break // EOB
		}
		z := zigzag[k&63] & 63
		blk[z] = T(extendTop(bits, s)) * q[z]
		bits <<= s & 15
		nbits -= s
		k++
	}
	br.bits, br.nbits = bits, nbits
	return k
}

// transform writes the samples of the dequantised blk at the decoder's scale to out. end is what
// decodeBlock returned; 1 means the block holds only its DC.
func (d *Decoder) transform(out []uint8, stride int, blk *[64]int32, end int) {
	if d.exact {
		if end <= 1 {
			fillBlock(out, stride, 8, dcSampleAccurate(blk[0]))
		} else {
			idctAccurate(out, stride, blk)
		}
		return
	}
	if end <= 1 || d.bs == 1 {
		fillBlock(out, stride, d.bs, dcSample(blk[0]))
		return
	}
	switch d.bs {
	case 8:
		idct8(out, stride, blk)
	case 4:
		idct4(out, stride, blk)
	default:
		idct2(out, stride, blk)
	}
}

// decodeStreaming decodes the only scan of a sequential JPEG, which holds every component, one row of
// MCUs at a time: Huffman decode and inverse DCT into the row planes, then colour conversion into dst.
func (d *Decoder) decodeStreaming(sc *scan, dst *Dst) error {
	br := &d.br
	*br = bitReader{data: d.data}
	br.reset(d.pos)
	left := d.restart // MCUs left in this restart interval
	for my := range d.myLast + 1 {
		inRegion := my >= d.myFirst
		for mx := range d.mcusX {
			if d.restart > 0 {
				if left == 0 {
					if !br.nextRestart() {
						return corrupt("restart marker missing after MCU %d", my*d.mcusX+mx)
					}
					for i := range sc.n {
						d.comps[sc.comp[i]].pred = 0
					}
					left = d.restart
				}
				left--
			}
			for i := range sc.n {
				c := &d.comps[sc.comp[i]]
				q := &d.qs[c.tq]
				for v := range c.v {
					for h := range c.h {
						end := decodeBlock(br, &d.blk, c, q)
						if end < 0 {
							return corrupt("invalid Huffman code in MCU %d", my*d.mcusX+mx)
						}
						if bx := mx*c.h + h; inRegion && bx >= c.bx0 && bx < c.bx1 {
							d.transform(d.planes[d.blockOffset(c, my, v, bx):], c.planeStride, &d.blk, end)
						}
						if end <= 1 {
							d.blk[0] = 0
						} else {
							d.blk = [64]int32{}
						}
					}
				}
			}
		}
		if br.lost() {
			return corrupt("the scan data ends in MCU row %d of %d", my, d.mcusY)
		}
		if inRegion {
			d.emit(my, my == d.myLast, dst)
		}
	}
	pos, ok := br.endScan()
	if !ok {
		return corrupt("the scan data ends early")
	}
	if d.myLast+1 < d.mcusY && !scanEnds(d.data, pos) {
		return corrupt("the scan data ends before its end marker")
	}
	return nil
}

// decodeToCoefs decodes one scan of a progressive or multi-scan sequential JPEG into d.coefs and leaves
// d.pos after the scan's data.
func (d *Decoder) decodeToCoefs(sc *scan) error {
	br := &d.br
	*br = bitReader{data: d.data}
	br.reset(d.pos)
	d.eobrun = 0
	for i := range sc.n {
		d.comps[sc.comp[i]].pred = 0
	}
	left := d.restart
	// restart handles the interval boundary before each MCU.
	restart := func(mcu int) error {
		if d.restart == 0 {
			return nil
		}
		if left == 0 {
			if !br.nextRestart() {
				return corrupt("restart marker missing after MCU %d", mcu)
			}
			for i := range sc.n {
				d.comps[sc.comp[i]].pred = 0
			}
			d.eobrun = 0
			left = d.restart
		}
		left--
		return nil
	}

	if sc.n == 1 {
		// Non-interleaved: one block per MCU, over the blocks that cover the component (A.2.2).
		c := &d.comps[sc.comp[0]]
		for by := range c.cbh {
			for bx := range c.cbw {
				if err := restart(by*c.cbw + bx); err != nil {
					return err
				}
				blk, nz := d.coefBlock(c, bx, by)
				if err := d.decodeCoefBlock(sc, c, blk, nz); err != nil {
					return err
				}
			}
			if br.lost() {
				return corrupt("the scan data ends in block row %d of %d", by, c.cbh)
			}
		}
	} else {
		for my := range d.mcusY {
			for mx := range d.mcusX {
				if err := restart(my*d.mcusX + mx); err != nil {
					return err
				}
				for i := range sc.n {
					c := &d.comps[sc.comp[i]]
					for v := range c.v {
						for h := range c.h {
							blk, nz := d.coefBlock(c, mx*c.h+h, my*c.v+v)
							if err := d.decodeCoefBlock(sc, c, blk, nz); err != nil {
								return err
							}
						}
					}
				}
			}
			if br.lost() {
				return corrupt("the scan data ends in MCU row %d of %d", my, d.mcusY)
			}
		}
	}
	pos, ok := br.endScan()
	if !ok {
		return corrupt("the scan data ends early")
	}
	d.pos = pos
	return nil
}

// unitQuant leaves coefficients quantised, for multi-scan sequential files, which dequantise at the end
// as progressive ones do.
var unitQuant = func() (q [64]int16) {
	for i := range q {
		q[i] = 1
	}
	return q
}()

// coefBlock returns block (bx, by) of component c in the coefficient buffer, with its mask of non-zero
// AC coefficients.
func (d *Decoder) coefBlock(c *component, bx, by int) (*[64]int16, *uint64) {
	b := c.coefOff/64 + by*c.bw + bx
	return (*[64]int16)(d.coefs[64*b : 64*b+64]), &d.nonZero[b]
}

// decodeCoefBlock decodes the part of one block that the scan carries. nz is the block's mask of non-zero
// AC coefficients (progressive scans only).
func (d *Decoder) decodeCoefBlock(sc *scan, c *component, blk *[64]int16, nz *uint64) error {
	ok := true
	switch {
	case !d.progressive:
		ok = decodeBlock(&d.br, blk, c, &unitQuant) >= 0
	case sc.ss == 0 && sc.ah == 0:
		ok = d.dcFirst(c, blk, sc.al)
	case sc.ss == 0:
		if d.br.readBit() {
			blk[0] |= 1 << sc.al
		}
	case sc.ah == 0:
		ok = d.acFirst(c, blk, nz, sc.ss, sc.se, sc.al)
	default:
		ok = d.acRefine(c, blk, nz, sc.ss, sc.se, sc.al)
	}
	if !ok {
		return corrupt("invalid Huffman code or coefficient run")
	}
	return nil
}

// dcFirst decodes the first bits of a DC coefficient (G.1.2.1).
func (d *Decoder) dcFirst(c *component, blk *[64]int16, al uint) bool {
	s, ok := d.br.decodeSymbol(c.dc)
	if !ok {
		return false
	}
	c.pred += d.br.receiveExtend(uint(s))
	blk[0] = int16(c.pred << al)
	return true
}

// decodeSymbol decodes one Huffman symbol with t's sym table from the top of bits, which must hold at
// least 16 valid bits, and returns it with the code length; ok is false at a code that is in no table.
func decodeSymbol(t *huffTable, bits uint64) (sym uint8, n uint, ok bool) {
	if e := t.sym[bits>>(64-lookBits)]; e != 0 {
		return uint8(e), uint(e>>8) & 31, true
	}
	return t.decodeSlow(bits)
}

// acFirst decodes the first bits of the AC coefficients ss..se (G.1.2.2), or counts the block off an
// EOB run. Like decodeBlock it keeps the bit buffer in locals. It sets the bit (in zig-zag order) of
// each coefficient it makes non-zero in *nz, for acRefine.
func (d *Decoder) acFirst(c *component, blk *[64]int16, nz *uint64, ss, se int, al uint) bool {
	if d.eobrun > 0 {
		d.eobrun--
		return true
	}
	br := &d.br
	bits, nbits := br.bits, br.nbits
	m := *nz
	for k := ss; k <= se; {
		if nbits < 32 {
			bits, nbits = br.refill(bits, nbits)
		}
		rs, n, ok := decodeSymbol(c.ac, bits)
		if !ok {
			return false
		}
		bits <<= n & 31
		nbits -= n
		r, s := uint(rs>>4), uint(rs&15)
		if s == 0 {
			if r < 15 { // EOBr: this block and 2^r - 1 + (r more bits) after it end here
				d.eobrun = 1<<r - 1
				if r > 0 {
					d.eobrun += int(bits >> ((64 - r) & 63))
					bits <<= r
					nbits -= r
				}
				break
			}
			k += 16 // ZRL
			continue
		}
		k += int(r)
		if k > 63 {
			return false
		}
		blk[zigzag[k]&63] = int16(extendTop(bits, s) << al)
		m |= 1 << uint(k)
		bits <<= s & 15
		nbits -= s
		k++
	}
	*nz = m
	br.bits, br.nbits = bits, nbits
	return true
}

// refine reads the correction bits of the non-zero coefficients whose zig-zag positions are set in mask,
// in order, and returns the bit buffer after them. A coefficient's magnitude gains p1 = 2^al when its
// bit is 1 and that bit of the coefficient is still clear.
func refine(br *bitReader, blk *[64]int16, mask uint64, bits uint64, nbits uint, p1 int16) (uint64, uint) {
	for mask != 0 {
		z := zigzag[mathbits.TrailingZeros64(mask)] & 63
		mask &= mask - 1
		if nbits == 0 {
			bits, nbits = br.refill(bits, nbits)
		}
		if v := blk[z]; bits>>63 != 0 && v&p1 == 0 {
			if v >= 0 {
				blk[z] = v + p1
			} else {
				blk[z] = v - p1
			}
		}
		bits <<= 1
		nbits--
	}
	return bits, nbits
}

// acRefine adds one more bit to the AC coefficients ss..se (G.1.2.3). Coefficients already non-zero get a
// correction bit each; a coded symbol gives the run of still-zero coefficients to pass over and the sign
// of the one that becomes +-1 (in units of 2^al) after them.
//
// *nz has a bit per non-zero coefficient in zig-zag order, so the work goes to the non-zero coefficients
// and the symbols, not to every position of the band: zero runs are found by clearing set bits of the
// zero mask, and the coefficients to refine are the set bits of the non-zero mask in between.
func (d *Decoder) acRefine(c *component, blk *[64]int16, nz *uint64, ss, se int, al uint) bool {
	br := &d.br
	bits, nbits := br.bits, br.nbits
	p1, m1 := int16(1)<<al, int16(-1)<<al
	m := *nz
	band := ^uint64(0) >> uint(63-se) &^ (1<<uint(ss) - 1) // positions ss..se
	k := uint(ss)                                          // next position; positions below it are done
	if d.eobrun == 0 {
		for k <= uint(se) {
			if nbits < 32 {
				bits, nbits = br.refill(bits, nbits)
			}
			rs, n, ok := decodeSymbol(c.ac, bits)
			if !ok {
				return false
			}
			bits <<= n & 31
			nbits -= n
			r, s := uint(rs>>4), rs&15
			var val int16
			if s != 0 {
				if s != 1 {
					return false
				}
				val = m1
				if bits>>63 != 0 {
					val = p1
				}
				bits <<= 1
				nbits--
			} else if r != 15 {
				d.eobrun = 1 << r
				if r > 0 {
					d.eobrun += int(bits >> ((64 - r) & 63))
					bits <<= r
					nbits -= r
				}
				break
			}
			// Pass over r zero coefficients, refining the non-zero ones on the way, and put val in the
			// next zero one (a ZRL, with val 0, passes over sixteen).
			rest := band &^ (1<<k - 1)
			zeros := rest &^ m
			for range r {
				zeros &= zeros - 1
			}
			target := uint(64)
			if zeros != 0 {
				target = uint(mathbits.TrailingZeros64(zeros))
			}
			if mask := rest & m & (1<<target - 1); mask != 0 {
				bits, nbits = refine(br, blk, mask, bits, nbits, p1)
			}
			if target > uint(se) {
				k = uint(se) + 1
				break
			}
			if val != 0 {
				blk[zigzag[target]&63] = val
				m |= 1 << target
			}
			k = target + 1
		}
	}
	if d.eobrun > 0 {
		// The rest of the band is in an EOB run: only correction bits for the non-zero coefficients.
		bits, nbits = refine(br, blk, band&^(1<<k-1)&m, bits, nbits, p1)
		d.eobrun--
	}
	*nz = m
	br.bits, br.nbits = bits, nbits
	return true
}

// outputCoefs converts the coefficient buffer into dst, one row of MCUs at a time, at the end of a
// progressive or multi-scan image.
func (d *Decoder) outputCoefs(dst *Dst) error {
	if err := d.prescaleQuant(); err != nil {
		return err
	}
	for my := d.myFirst; my <= d.myLast; my++ {
		for i := range d.ncomp {
			c := &d.comps[i]
			q := &d.qs[c.tq]
			for v := range c.v {
				for bx := c.bx0; bx < c.bx1; bx++ {
					blk, _ := d.coefBlock(c, bx, my*c.v+v)
					end := dequantize(&d.blk, blk, q)
					d.transform(d.planes[d.blockOffset(c, my, v, bx):], c.planeStride, &d.blk, end)
				}
			}
		}
		d.emit(my, my == d.myLast, dst)
	}
	return nil
}
