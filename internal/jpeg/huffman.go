// This file holds the Huffman tables (T.81 annex C and F.2.2.3) with their lookahead tables.

package jpeg

// lookBits is how many bits the lookahead tables index. Almost every code in a photograph is this short or
// shorter, and most also fit their magnitude bits, so one table load decodes a whole coefficient.
const lookBits = 10

// huffTable is one Huffman table. For DC tables the symbol is the magnitude category s; for AC tables it
// is r<<4 | s, a run of r zeros then a coefficient of s magnitude bits.
//
// DHT segments only record the codes; the lookahead tables are filled when a scan first uses the table,
// and only the one it needs: progressive files redefine their tables before every scan, most of which
// read a handful of symbols.
type huffTable struct {
	defined   bool
	dc        bool // a DC table: symbols are magnitude categories
	fastBuilt bool
	symBuilt  bool
	n         int         // number of codes
	codes     [256]uint16 // code of each symbol, in order
	lengths   [256]uint8  // and its length

	// fast[p] decodes the code at the front of the next lookBits bits p; 0 when that code is longer than
	// lookBits bits (or p starts no code). Otherwise:
	//	bits 0-7   bits to consume: the code, plus its magnitude bits when they fit in p
	//	bits 8-11  zero run r (AC)
	//	bits 12-15 magnitude bits still to read after consuming; 0 when they fit
	//	bits 16-31 the coefficient (or DC difference) when the magnitude bits fit, else 0
	// An AC entry with no magnitude bits and value 0 is EOB (or an EOB run), or ZRL when r is 15.
	fast [1 << lookBits]int32

	// sym[p] is the code length << 8 | symbol for the same p, 0 when the code is longer; the progressive
	// scans read magnitude and correction bits themselves.
	sym [1 << lookBits]uint16

	// Codes longer than lookBits, decoded one length at a time as in T.81 figure F.16.
	maxCode [17]int32 // largest code of each length, -1 when there is none
	valOff  [17]int32 // index in vals of the first code of each length, minus that code
	vals    [256]uint8
}

// build makes the table from the counts of codes of each length (counts[1..16]) and the symbols in code
// order (T.81 annex C).
func (t *huffTable) build(counts *[17]int, vals []byte, dc bool) error {
	t.defined, t.fastBuilt, t.symBuilt, t.dc = false, false, false, dc
	copy(t.vals[:], vals)
	code, k := 0, 0
	for l := 1; l <= 16; l++ {
		t.valOff[l] = int32(k - code)
		t.maxCode[l] = -1
		if code+counts[l] > 1<<l {
			return corrupt("Huffman table has more codes than fit in %d bits", l)
		}
		for range counts[l] {
			sym := vals[k]
			if dc && sym > 15 {
				return corrupt("DC Huffman table has magnitude category %d; the largest is 15", sym)
			}
			t.codes[k], t.lengths[k] = uint16(code), uint8(l)
			code++
			k++
		}
		if counts[l] > 0 {
			t.maxCode[l] = int32(code - 1)
		}
		code <<= 1
	}
	t.n = k
	t.defined = true
	return nil
}

// prepare fills the lookahead table a scan reads: sym for progressive scans, fast for sequential ones.
func (t *huffTable) prepare(progressive bool) {
	switch {
	case progressive && !t.symBuilt:
		t.buildSym()
	case !progressive && !t.fastBuilt:
		t.buildFast()
	}
}

// buildFast fills fast, for sequential scans.
func (t *huffTable) buildFast() {
	clear(t.fast[:])
	for k := range t.n {
		if l := int(t.lengths[k]); l <= lookBits {
			t.fillFast(int(t.codes[k]), l, t.vals[k])
		}
	}
	t.fastBuilt = true
}

// buildSym fills sym, for progressive scans.
func (t *huffTable) buildSym() {
	clear(t.sym[:])
	for k := range t.n {
		l := int(t.lengths[k])
		if l > lookBits {
			continue
		}
		free := lookBits - l
		e := uint16(l)<<8 | uint16(t.vals[k])
		base := int(t.codes[k]) << free
		for j := range 1 << free {
			t.sym[base|j] = e
		}
	}
	t.symBuilt = true
}

// fillFast sets the fast entries of every p that starts with the l-bit code.
func (t *huffTable) fillFast(code, l int, sym uint8) {
	r, s := int32(sym>>4), int32(sym&15)
	if t.dc {
		r, s = 0, int32(sym)
	}
	free := lookBits - l // bits of p after the code
	base := code << free
	for j := range 1 << free {
		p := base | j
		switch {
		case s == 0:
			t.fast[p] = r<<8 | int32(l)
		case int(s) <= free:
			m := int32(j>>(free-int(s))) & (1<<s - 1)
			t.fast[p] = extend(m, s)<<16 | r<<8 | (int32(l) + s)
		default:
			t.fast[p] = s<<12 | r<<8 | int32(l)
		}
	}
}

// extend turns s magnitude bits m into the coefficient they code (T.81 F.2.2.1): the values with a
// leading 0 bit are the negative ones.
func extend(m, s int32) int32 {
	if m < 1<<(s-1) {
		return m - 1<<s + 1
	}
	return m
}

// decodeSlow decodes a code longer than lookBits from the top of bits, which holds at least 16 valid bits.
// It reports false when no code matches: corrupt data.
func (t *huffTable) decodeSlow(bits uint64) (sym uint8, length uint, ok bool) {
	code := int32(bits >> 48)
	for l := lookBits + 1; l <= 16; l++ {
		c := code >> (16 - l)
		if c <= t.maxCode[l] {
			return t.vals[(t.valOff[l]+c)&255], uint(l), true
		}
	}
	return 0, 0, false
}
