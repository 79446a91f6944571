// This file holds the bit reader over entropy-coded data: byte stuffing, markers and restart intervals
// (T.81 B.1.1.5, F.1.2.3).

package jpeg

import "encoding/binary"

// bitReader reads the entropy-coded bytes of a scan. bits holds the next bits of the scan, most
// significant first; the top nbits are valid. The bits below those are either zero or the true next
// bits of the scan (a refill can load part of a byte ahead), never anything else, so the next refill
// can OR over them.
//
// The block decoders copy bits and nbits into locals and call refill themselves; the methods at the end
// of this file read through the struct, for the progressive DC scans.
type bitReader struct {
	data  []byte
	pos   int // next byte of data to load
	bits  uint64
	nbits uint
	// fake counts the zero bytes fed in place of data past a marker or the end of the data. Decoding
	// is allowed to look ahead into them, not to use them: see overrun.
	fake int
}

func (br *bitReader) reset(pos int) {
	br.pos, br.bits, br.nbits, br.fake = pos, 0, 0, 0
}

// hasFF reports whether any byte of x is 0xFF: whether ^x has a zero byte.
func hasFF(x uint64) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	y := ^x
	return (y-lo)&^y&hi != 0
}

// refill returns bits topped up to at least 57 valid bits. When the next 8 bytes hold no 0xFF (so no
// stuffing and no marker) it loads them in one go, keeping the whole bytes that fit.
func (br *bitReader) refill(bits uint64, nbits uint) (uint64, uint) {
	if p := br.pos; p+8 <= len(br.data) {
		x := binary.BigEndian.Uint64(br.data[p:])
		if !hasFF(x) {
			bits |= x >> nbits
			k := (63 - nbits) >> 3
			br.pos = p + int(k)
			return bits, nbits + 8*k
		}
	}
	return br.refillSlow(bits, nbits)
}

// refillSlow loads a byte at a time: it drops the 0x00 stuffed after a 0xFF data byte, and at a marker or
// the end of the data it feeds zeros without moving past.
func (br *bitReader) refillSlow(bits uint64, nbits uint) (uint64, uint) {
	data := br.data
	for nbits <= 56 {
		var b uint64
		p := br.pos
		switch {
		case p < len(data) && data[p] != 0xFF:
			b = uint64(data[p])
			br.pos = p + 1
		case p+1 < len(data) && data[p] == 0xFF && data[p+1] == 0:
			b = 0xFF
			br.pos = p + 2
		default:
			br.fake++
		}
		bits |= b << (56 - nbits)
		nbits += 8
	}
	return bits, nbits
}

// overrun reports whether decoding used bits that were not in the data: the scan was cut short, or its
// codes are corrupt. With nbits bits left, the last 8*fake of them are the fed zeros.
func (br *bitReader) overrun(nbits uint) bool {
	return uint(br.fake)*8 > nbits
}

// lost reports whether decoding has certainly run past the data already: more zero bytes were fed than the
// 64-bit buffer can hold unused. The block loops check it once per row of MCUs to stop early.
func (br *bitReader) lost() bool {
	return br.fake > 8
}

// nextRestart moves past the restart marker that ends a restart interval, dropping the bits left (the
// padding of the interval's last byte), and reports whether there was one. Stray bytes before the marker
// are skipped as libjpeg does.
func (br *bitReader) nextRestart() bool {
	if br.overrun(br.nbits) {
		return false
	}
	data, p := br.data, br.pos
	for p+1 < len(data) {
		if data[p] != 0xFF || data[p+1] == 0 || data[p+1] == 0xFF {
			p++
			continue
		}
		m := data[p+1]
		if m < markerRST0 || m > markerRST7 {
			return false
		}
		br.reset(p + 2)
		return true
	}
	return false
}

// endScan returns the position of the first byte after the scan's data, which nextMarker then scans from,
// or false when the scan used bits past its data.
func (br *bitReader) endScan() (int, bool) {
	return br.pos, !br.overrun(br.nbits)
}

// The methods below read through br's own fields, a bit slower than the locals of the block decoders;
// the progressive DC scans, which read a symbol or a bit per block, use them.

func (br *bitReader) ensure(n uint) {
	if br.nbits < n {
		br.bits, br.nbits = br.refill(br.bits, br.nbits)
	}
}

// readBits returns the next n bits (n <= 16) as an unsigned number.
func (br *bitReader) readBits(n uint) int32 {
	br.ensure(16)
	v := int32(br.bits >> (64 - n) & (1<<n - 1))
	br.bits <<= n
	br.nbits -= n
	return v
}

func (br *bitReader) readBit() bool {
	br.ensure(1)
	b := br.bits>>63 != 0
	br.bits <<= 1
	br.nbits--
	return b
}

// receiveExtend reads s magnitude bits (s <= 15) and returns the coefficient they code.
func (br *bitReader) receiveExtend(s uint) int32 {
	if s == 0 {
		return 0
	}
	return extend(br.readBits(s), int32(s))
}

// decodeSymbol decodes one Huffman symbol with t.
func (br *bitReader) decodeSymbol(t *huffTable) (uint8, bool) {
	br.ensure(16)
	sym, n, ok := decodeSymbol(t, br.bits)
	br.bits <<= n & 31
	br.nbits -= n
	return sym, ok
}
