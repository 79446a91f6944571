// This file holds the marker loop and the parsers of the marker segments (T.81 annex B).

package jpeg

import (
	"encoding/binary"
	"errors"
)

// Marker codes, the byte after 0xFF (T.81 table B.1).
const (
	markerSOF0  = 0xC0 // baseline
	markerSOF1  = 0xC1 // extended sequential, Huffman
	markerSOF2  = 0xC2 // progressive, Huffman
	markerDHT   = 0xC4
	markerJPG   = 0xC8 // reserved for extensions; not a frame
	markerDAC   = 0xCC // arithmetic coding conditioning
	markerRST0  = 0xD0
	markerRST7  = 0xD7
	markerSOI   = 0xD8
	markerEOI   = 0xD9
	markerSOS   = 0xDA
	markerDQT   = 0xDB
	markerDRI   = 0xDD
	markerAPP0  = 0xE0
	markerAPP14 = 0xEE
)

// zigzag maps the position of a coefficient in the coded (zig-zag) order to its natural row-major
// position in the 8x8 block (T.81 figure A.6).
var zigzag = [64]uint8{
	0, 1, 8, 16, 9, 2, 3, 10,
	17, 24, 32, 25, 18, 11, 4, 5,
	12, 19, 26, 33, 40, 48, 41, 34,
	27, 20, 13, 6, 7, 14, 21, 28,
	35, 42, 49, 56, 57, 50, 43, 36,
	29, 22, 15, 23, 30, 37, 44, 51,
	58, 59, 52, 45, 38, 31, 39, 46,
	53, 60, 61, 54, 47, 55, 62, 63,
}

var errNotJPEG = errors.New("jpeg: not a JPEG file (it does not start with the SOI marker FF D8)")

// run reads the markers of d.data in order and decodes each scan as it comes. With configOnly it stops
// after the frame header, for Config.
func (d *Decoder) run(dst *Dst, configOnly bool) error {
	if len(d.data) < 2 || d.data[0] != 0xFF || d.data[1] != markerSOI {
		return errNotJPEG
	}
	d.pos = 2
	afterScan := false
	for {
		m, err := d.nextMarker(afterScan)
		if err != nil {
			return err
		}
		afterScan = false
		switch {
		case m == markerEOI:
			if configOnly || !d.frameSeen {
				return corrupt("end of image before the frame header")
			}
			if d.scans == 0 {
				return corrupt("end of image before any scan")
			}
			return d.outputCoefs(dst)
		case m >= markerRST0 && m <= markerRST7:
			// A restart marker outside a scan carries nothing; skip it as libjpeg does.
		case m == 0x01: // TEM: no length, no meaning
		case m >= 0xC0 && m <= 0xCF && m != markerDHT && m != markerJPG && m != markerDAC:
			if err := d.readFrame(m); err != nil {
				return err
			}
			if configOnly {
				return nil
			}
			if m != markerSOF0 && m != markerSOF1 && m != markerSOF2 {
				return unsupported("frame type SOF%d (lossless, hierarchical or arithmetic-coded)", m-0xC0)
			}
			if err := d.checkFrame(); err != nil {
				return err
			}
		case m == markerDAC:
			return unsupported("arithmetic coding")
		case m == markerSOS:
			if configOnly {
				return corrupt("scan before the frame header")
			}
			done, err := d.readScan(dst)
			if done || err != nil {
				return err
			}
			afterScan = true
		default:
			seg, err := d.segment()
			if err != nil {
				return err
			}
			if configOnly && (m == markerDHT || m == markerDQT) {
				continue // Config needs only the frame header
			}
			if err := d.readSegment(m, seg); err != nil {
				return err
			}
		}
	}
}

// nextMarker returns the next marker code, d.pos then at the byte after it. Between segments the marker
// must follow at once; after entropy-coded data, stray bytes before the marker are skipped as libjpeg
// does (an encoder may pad a scan).
func (d *Decoder) nextMarker(afterScan bool) (byte, error) {
	data, p := d.data, d.pos
	for {
		if p >= len(data) {
			if d.scans > 0 {
				return 0, corrupt("the data ends before the end-of-image marker")
			}
			return 0, corrupt("the data ends before the first scan (%d bytes)", len(data))
		}
		if data[p] != 0xFF {
			if !afterScan {
				return 0, corrupt("expected a marker at byte %d, found %#02x", p, data[p])
			}
			p++
			continue
		}
		// Any number of 0xFF fill bytes may precede a marker code.
		for p < len(data) && data[p] == 0xFF {
			p++
		}
		if p >= len(data) {
			continue
		}
		m := data[p]
		p++
		if m == 0 { // a stuffed 0xFF data byte, only possible in stray entropy-coded bytes
			if !afterScan {
				return 0, corrupt("expected a marker at byte %d, found FF 00", p-2)
			}
			continue
		}
		d.pos = p
		return m, nil
	}
}

// segment returns the payload of the marker segment at d.pos (after its 2-byte length) and moves past it.
func (d *Decoder) segment() ([]byte, error) {
	if d.pos+2 > len(d.data) {
		return nil, corrupt("marker segment length cut off at byte %d", d.pos)
	}
	n := int(binary.BigEndian.Uint16(d.data[d.pos:]))
	if n < 2 || d.pos+n > len(d.data) {
		return nil, corrupt("marker segment at byte %d claims %d bytes, %d are left", d.pos, n, len(d.data)-d.pos)
	}
	seg := d.data[d.pos+2 : d.pos+n]
	d.pos += n
	return seg, nil
}

// readSegment parses the table and application segments; others are skipped.
func (d *Decoder) readSegment(m byte, seg []byte) error {
	switch m {
	case markerDQT:
		return d.readDQT(seg)
	case markerDHT:
		return d.readDHT(seg)
	case markerDRI:
		if len(seg) != 2 {
			return corrupt("DRI segment has %d bytes, want 2", len(seg))
		}
		d.restart = int(binary.BigEndian.Uint16(seg))
	case markerAPP0:
		if len(seg) >= 5 && string(seg[:5]) == "JFIF\x00" {
			d.jfif = true
		}
	case markerAPP14:
		// "Adobe", version (2), flags0 (2), flags1 (2), colour transform (1).
		if len(seg) >= 12 && string(seg[:5]) == "Adobe" {
			d.adobe, d.adobeXform = true, seg[11]
		}
	}
	return nil
}

func (d *Decoder) readDQT(seg []byte) error {
	for len(seg) > 0 {
		pq, tq := seg[0]>>4, seg[0]&15
		if tq > 3 {
			return corrupt("DQT defines table %d, the largest is 3", tq)
		}
		q := &d.quant[tq]
		switch pq {
		case 0:
			if len(seg) < 65 {
				return corrupt("DQT segment cut short")
			}
			for i, v := range seg[1:65] {
				q[zigzag[i]] = uint16(v)
			}
			seg = seg[65:]
		case 1:
			if len(seg) < 129 {
				return corrupt("DQT segment cut short")
			}
			for i := range 64 {
				q[zigzag[i]] = binary.BigEndian.Uint16(seg[1+2*i:])
			}
			seg = seg[129:]
		default:
			return corrupt("DQT table precision %d, want 0 or 1", pq)
		}
		d.quantDefined[tq] = true
	}
	return nil
}

func (d *Decoder) readDHT(seg []byte) error {
	for len(seg) > 0 {
		if len(seg) < 17 {
			return corrupt("DHT segment cut short")
		}
		tc, th := seg[0]>>4, seg[0]&15
		if tc > 1 || th > 3 {
			return corrupt("DHT defines class %d table %d; classes are 0 and 1, tables 0 to 3", tc, th)
		}
		var counts [17]int
		total := 0
		for l := 1; l <= 16; l++ {
			counts[l] = int(seg[l])
			total += counts[l]
		}
		if total > 256 || len(seg) < 17+total {
			return corrupt("DHT table has %d codes, %d bytes are left", total, len(seg)-17)
		}
		t := &d.dcTables[th]
		if tc == 1 {
			t = &d.acTables[th]
		}
		if err := t.build(&counts, seg[17:17+total], tc == 0); err != nil {
			return err
		}
		seg = seg[17+total:]
	}
	return nil
}

// readFrame parses the part of a frame header (SOFn) that Config reports; checkFrame checks the rest.
func (d *Decoder) readFrame(m byte) error {
	if d.frameSeen {
		return corrupt("a second frame header")
	}
	seg, err := d.segment()
	if err != nil {
		return err
	}
	if len(seg) < 6 {
		return corrupt("frame header cut short")
	}
	d.frameSeen = true
	d.frameSeg = seg
	d.progressive = m == markerSOF2 || m == 0xC6 || m == 0xCA || m == 0xCE
	d.height = int(binary.BigEndian.Uint16(seg[1:]))
	d.width = int(binary.BigEndian.Uint16(seg[3:]))
	d.ncomp = int(seg[5])
	if len(seg) != 6+3*d.ncomp {
		return corrupt("frame header is %d bytes for %d components", len(seg), d.ncomp)
	}
	if d.width == 0 {
		return corrupt("image width is 0")
	}
	return nil
}

// checkFrame checks that the frame is one this package decodes, reads the components and works out the
// MCU and block geometry.
func (d *Decoder) checkFrame() error {
	seg := d.frameSeg
	if seg[0] != 8 {
		return unsupported("%d-bit samples", seg[0])
	}
	if d.height == 0 {
		return unsupported("height defined by a DNL marker")
	}
	switch d.ncomp {
	case 1, 3:
	case 4:
		if !d.adobe {
			return unsupported("4 components without an Adobe marker to say whether they are CMYK or YCCK")
		}
	default:
		return unsupported("%d components", d.ncomp)
	}
	d.hmax, d.vmax = 1, 1
	for i := range d.ncomp {
		c := &d.comps[i]
		p := seg[6+3*i:]
		c.id, c.h, c.v, c.tq = p[0], int(p[1]>>4), int(p[1]&15), p[2]
		if c.h < 1 || c.h > 4 || c.v < 1 || c.v > 4 {
			return corrupt("component %d has sampling factors %dx%d; each must be 1 to 4", i, c.h, c.v)
		}
		if c.tq > 3 {
			return corrupt("component %d uses quantisation table %d; the largest is 3", i, c.tq)
		}
		for j := range i {
			if d.comps[j].id == c.id {
				return corrupt("two components have the id %d", c.id)
			}
		}
		if d.ncomp == 1 {
			// A single component is never interleaved: one block per MCU whatever the factors say (A.2.2).
			c.h, c.v = 1, 1
		}
		d.hmax, d.vmax = max(d.hmax, c.h), max(d.vmax, c.v)
	}

	log2 := func(r int) (uint, bool) {
		switch r {
		case 1:
			return 0, true
		case 2:
			return 1, true
		case 4:
			return 2, true
		}
		return 0, false
	}
	d.mcusX = (d.width + 8*d.hmax - 1) / (8 * d.hmax)
	d.mcusY = (d.height + 8*d.vmax - 1) / (8 * d.vmax)
	for i := range d.ncomp {
		c := &d.comps[i]
		var okx, oky bool
		c.sx, okx = log2(d.hmax / c.h)
		c.sy, oky = log2(d.vmax / c.v)
		if !okx || !oky || d.hmax%c.h != 0 || d.vmax%c.v != 0 {
			return unsupported("sampling factors %dx%d against a maximum of %dx%d", c.h, c.v, d.hmax, d.vmax)
		}
		c.bw, c.bh = d.mcusX*c.h, d.mcusY*c.v
		c.cw = (d.width*c.h + d.hmax - 1) / d.hmax
		c.ch = (d.height*c.v + d.vmax - 1) / d.vmax
		c.cbw, c.cbh = (c.cw+7)/8, (c.ch+7)/8
	}
	d.color = colorGray
	if d.ncomp == 4 {
		// As libjpeg decides: transform 0 is plain CMYK, any other value YCCK.
		d.color = colorYCCK
		if d.adobeXform == 0 {
			d.color = colorCMYK
		}
	}
	if d.ncomp == 3 {
		d.color = colorYCbCr
		switch {
		case d.jfif:
		case d.adobe:
			if d.adobeXform == 0 {
				d.color = colorRGB
			}
		case d.comps[0].id == 'R' && d.comps[1].id == 'G' && d.comps[2].id == 'B':
			d.color = colorRGB
		}
	}
	return nil
}

// readScan parses a scan header and decodes the scan. It reports done when the image is complete, which
// is after the only scan of a sequential file.
func (d *Decoder) readScan(dst *Dst) (done bool, err error) {
	if !d.frameSeen {
		return false, corrupt("scan before the frame header")
	}
	if d.mcusX == 0 {
		return false, corrupt("scan after an unsupported frame header")
	}
	seg, err := d.segment()
	if err != nil {
		return false, err
	}
	if len(seg) < 1 {
		return false, corrupt("scan header cut short")
	}
	var sc scan
	sc.n = int(seg[0])
	if sc.n < 1 || sc.n > d.ncomp || len(seg) != 4+2*sc.n {
		return false, corrupt("scan header of %d bytes for %d components (the frame has %d)", len(seg), sc.n, d.ncomp)
	}
	for i := range sc.n {
		id, tables := seg[1+2*i], seg[2+2*i]
		k := -1
		for j := range d.ncomp {
			if d.comps[j].id == id {
				k = j
			}
		}
		if k < 0 {
			return false, corrupt("scan names component id %d, which the frame does not have", id)
		}
		for j := range i {
			if sc.comp[j] == k {
				return false, corrupt("scan names component id %d twice", id)
			}
		}
		td, ta := tables>>4, tables&15
		if td > 3 || ta > 3 {
			return false, corrupt("scan uses Huffman tables %d/%d; the largest is 3", td, ta)
		}
		sc.comp[i] = k
		c := &d.comps[k]
		c.dc, c.ac = &d.dcTables[td], &d.acTables[ta]
	}
	p := seg[1+2*sc.n:]
	sc.ss, sc.se, sc.ah, sc.al = int(p[0]), int(p[1]), uint(p[2]>>4), uint(p[2]&15)
	if d.progressive {
		if sc.ss > sc.se || sc.se > 63 || (sc.ss == 0) != (sc.se == 0) || sc.ah > 13 || sc.al > 13 {
			return false, corrupt("progressive scan with Ss=%d Se=%d Ah=%d Al=%d", sc.ss, sc.se, sc.ah, sc.al)
		}
		if sc.ss > 0 && sc.n != 1 {
			return false, corrupt("progressive AC scan of %d components; AC scans have one", sc.n)
		}
	} else {
		// Sequential scans always carry the whole spectrum at full precision; the fields are fixed.
		sc.ss, sc.se, sc.ah, sc.al = 0, 63, 0, 0
	}
	for i := range sc.n {
		c := &d.comps[sc.comp[i]]
		if sc.ss == 0 && sc.ah == 0 {
			if !c.dc.defined {
				return false, corrupt("scan uses a DC Huffman table that is not defined")
			}
			c.dc.prepare(d.progressive)
		}
		if sc.se > 0 {
			if !c.ac.defined {
				return false, corrupt("scan uses an AC Huffman table that is not defined")
			}
			c.ac.prepare(d.progressive)
		}
	}

	d.scans++
	if d.scans > maxScans {
		return false, corrupt("more than %d scans", maxScans)
	}
	total, visits := 0, 0
	for i := range d.ncomp {
		total += d.comps[i].bw * d.comps[i].bh
	}
	if c := &d.comps[sc.comp[0]]; sc.n == 1 {
		visits = c.cbw * c.cbh
	} else {
		for i := range sc.n {
			c := &d.comps[sc.comp[i]]
			visits += d.mcusX * d.mcusY * c.h * c.v
		}
	}
	d.blockVisits += visits
	if d.blockVisits > maxScanPasses*total {
		return false, corrupt("the scans visit more than %d times the blocks of the image", maxScanPasses)
	}
	if d.scans == 1 {
		streaming := !d.progressive && sc.n == d.ncomp
		if err := d.setup(dst, !streaming); err != nil {
			return false, err
		}
		if streaming {
			if err := d.prescaleQuant(); err != nil {
				return false, err
			}
			return true, d.decodeStreaming(&sc, dst)
		}
		d.coefMode = true
	}
	return false, d.decodeToCoefs(&sc)
}
