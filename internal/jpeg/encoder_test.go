// This file holds a small baseline JPEG encoder for the tests. It writes the layouts that neither
// image/jpeg's encoder nor Pillow can: any sampling factors (4:4:0, 4:1:1, a grey image that declares 2x2),
// one scan per component, restart intervals in any of them. Its Huffman tables are built for each image
// from the symbol counts, so they also differ from the standard ones. image/jpeg decodes what it writes
// and stays the reference.

package jpeg

import (
	"bytes"
	"container/heap"
	"image"
	"math"
	"slices"
	"sort"
)

type testEncoding struct {
	factors  [][2]int // (h, v) per component; one component is grey, three are YCbCr
	quality  int      // 1..100
	restart  int      // MCUs per restart interval, 0 for none
	separate bool     // one scan per component instead of one interleaved scan
	quant16  bool     // write the quantisation tables with 16-bit entries (DQT Pq = 1)
}

// encodeTest encodes img as a baseline JPEG laid out as e says.
func encodeTest(img *image.RGBA, e testEncoding) []byte {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	n := len(e.factors)
	planes := make([][]float64, n)
	for c := range planes {
		planes[c] = make([]float64, w*h)
	}
	for y := range h {
		for x := range w {
			p := img.Pix[y*img.Stride+4*x:]
			r, g, bb := float64(p[0]), float64(p[1]), float64(p[2])
			yy := 0.299*r + 0.587*g + 0.114*bb
			planes[0][y*w+x] = yy
			if n == 3 {
				planes[1][y*w+x] = 128 + (bb-yy)/1.772
				planes[2][y*w+x] = 128 + (r-yy)/1.402
			}
		}
	}
	hmax, vmax := 1, 1
	for _, f := range e.factors {
		hmax, vmax = max(hmax, f[0]), max(vmax, f[1])
	}
	if n == 1 {
		hmax, vmax = 1, 1 // a single component is never interleaved, whatever it declares
	}
	mcusX, mcusY := (w+8*hmax-1)/(8*hmax), (h+8*vmax-1)/(8*vmax)

	// Quantised blocks of each component over the MCU-padded grid.
	type comp struct {
		h, v, bw, bh, cbw, cbh int
		blocks                 [][64]int32
	}
	comps := make([]comp, n)
	quant := [2][64]int32{}
	for i := range quant {
		for k := range 64 {
			u, v := k%8, k/8
			base := 6 + 3*(u+v) + 6*i
			s := 200 - 2*e.quality
			if e.quality < 50 {
				s = 5000 / e.quality
			}
			quant[i][k] = int32(min(max((base*s+50)/100, 1), 255))
		}
	}
	for c := range n {
		ch, cv := e.factors[c][0], e.factors[c][1]
		if n == 1 {
			ch, cv = 1, 1
		}
		sx, sy := hmax/ch, vmax/cv
		cw, chh := (w*ch+hmax-1)/hmax, (h*cv+vmax-1)/vmax
		sample := func(x, y int) float64 { // box average of the full-size pixels under (x, y), edges replicated
			x, y = min(x, cw-1), min(y, chh-1)
			sum, cnt := 0.0, 0
			for yy := y * sy; yy < min(y*sy+sy, h); yy++ {
				for xx := x * sx; xx < min(x*sx+sx, w); xx++ {
					sum += planes[c][yy*w+xx]
					cnt++
				}
			}
			return sum / float64(cnt)
		}
		cp := comp{h: ch, v: cv, bw: mcusX * ch, bh: mcusY * cv, cbw: (cw + 7) / 8, cbh: (chh + 7) / 8}
		cp.blocks = make([][64]int32, cp.bw*cp.bh)
		q := &quant[min(c, 1)]
		for by := range cp.bh {
			for bx := range cp.bw {
				var px [64]float64
				for k := range 64 {
					px[k] = sample(bx*8+k%8, by*8+k/8) - 128
				}
				blk := &cp.blocks[by*cp.bw+bx]
				for v := range 8 {
					for u := range 8 {
						sum := 0.0
						for y := range 8 {
							for x := range 8 {
								sum += px[y*8+x] * math.Cos(float64(2*x+1)*float64(u)*math.Pi/16) *
									math.Cos(float64(2*y+1)*float64(v)*math.Pi/16)
							}
						}
						cu, cv := 1.0, 1.0
						if u == 0 {
							cu = 1 / math.Sqrt2
						}
						if v == 0 {
							cv = 1 / math.Sqrt2
						}
						f := sum * cu * cv / 4
						blk[v*8+u] = int32(math.Round(f / float64(q[v*8+u])))
					}
				}
			}
		}
		comps[c] = cp
	}

	// The scans: which components, in which block order.
	type blockRef struct{ c, i int }
	var scans [][]blockRef // each scan's blocks in coding order, with -1 entries marking MCU ends
	addScan := func(cs []int) {
		var refs []blockRef
		if len(cs) == 1 {
			cp := comps[cs[0]]
			for by := range cp.cbh {
				for bx := range cp.cbw {
					refs = append(refs, blockRef{cs[0], by*cp.bw + bx}, blockRef{-1, 0})
				}
			}
		} else {
			for my := range mcusY {
				for mx := range mcusX {
					for _, c := range cs {
						cp := comps[c]
						for v := range cp.v {
							for h := range cp.h {
								refs = append(refs, blockRef{c, (my*cp.v+v)*cp.bw + mx*cp.h + h})
							}
						}
					}
					refs = append(refs, blockRef{-1, 0})
				}
			}
		}
		scans = append(scans, refs)
	}
	all := []int{0, 1, 2}[:n]
	if e.separate || n == 1 {
		for _, c := range all {
			addScan([]int{c})
		}
	} else {
		addScan(all)
	}

	var out bytes.Buffer
	seg := func(marker byte, payload []byte) {
		out.Write([]byte{0xFF, marker, byte((len(payload) + 2) >> 8), byte(len(payload) + 2)})
		out.Write(payload)
	}
	out.Write([]byte{0xFF, markerSOI})
	seg(markerAPP0, []byte("JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"))
	for i := range min(n, 2) {
		p := []byte{byte(i)}
		if e.quant16 {
			p[0] |= 0x10
		}
		for k := range 64 {
			if e.quant16 {
				p = append(p, 0)
			}
			p = append(p, byte(quant[i][zigzag[k]]))
		}
		seg(markerDQT, p)
	}
	sof := []byte{8, byte(h >> 8), byte(h), byte(w >> 8), byte(w), byte(n)}
	for c := range n {
		sof = append(sof, byte(c+1), byte(e.factors[c][0]<<4|e.factors[c][1]), byte(min(c, 1)))
	}
	seg(markerSOF0, sof)
	if e.restart > 0 {
		seg(markerDRI, []byte{byte(e.restart >> 8), byte(e.restart)})
	}

	for _, refs := range scans {
		// Symbols per component class (DC and AC of table 0 for luma, 1 for chroma).
		type sym struct {
			table, class int // class 0 DC, 1 AC
			value        uint8
			extra        uint32 // magnitude bits
			nextra       int
		}
		var syms [][]sym // per block ref (nil for MCU ends)
		var counts [2][2][257]int
		pred := make([]int32, n)
		mcu := 0
		for _, r := range refs {
			if r.c < 0 {
				mcu++
				if e.restart > 0 && mcu%e.restart == 0 {
					clear(pred)
				}
				syms = append(syms, nil)
				continue
			}
			t := min(r.c, 1)
			blk := &comps[r.c].blocks[r.i]
			var ss []sym
			category := func(v int32) (uint8, uint32, int) {
				a := v
				if a < 0 {
					a = -a
				}
				s := 0
				for a>>s != 0 {
					s++
				}
				bits := uint32(v)
				if v < 0 {
					bits = uint32(v - 1)
				}
				return uint8(s), bits & (1<<s - 1), s
			}
			diff := blk[0] - pred[r.c]
			pred[r.c] = blk[0]
			s, bits, nb := category(diff)
			ss = append(ss, sym{t, 0, s, bits, nb})
			run := 0
			last := 0
			for k := 1; k < 64; k++ {
				if blk[zigzag[k]] != 0 {
					last = k
				}
			}
			for k := 1; k <= last; k++ {
				v := blk[zigzag[k]]
				if v == 0 {
					run++
					continue
				}
				for run >= 16 {
					ss = append(ss, sym{t, 1, 0xF0, 0, 0})
					run -= 16
				}
				s, bits, nb := category(v)
				ss = append(ss, sym{t, 1, uint8(run)<<4 | s, bits, nb})
				run = 0
			}
			if last < 63 {
				ss = append(ss, sym{t, 1, 0, 0, 0})
			}
			for _, x := range ss {
				counts[x.table][x.class][x.value]++
			}
			syms = append(syms, ss)
		}
		var tables [2][2]testHuffman
		for t := range 2 {
			for cl := range 2 {
				if slices.ContainsFunc(counts[t][cl][:256], func(c int) bool { return c > 0 }) {
					tables[t][cl] = buildTestHuffman(&counts[t][cl])
					p := []byte{byte(cl<<4 | t)}
					p = append(p, tables[t][cl].bits[1:]...)
					p = append(p, tables[t][cl].vals...)
					seg(markerDHT, p)
				}
			}
		}
		var cs []int
		for _, r := range refs {
			if r.c >= 0 && !slices.Contains(cs, r.c) {
				cs = append(cs, r.c)
			}
		}
		sos := []byte{byte(len(cs))}
		for _, c := range cs {
			sos = append(sos, byte(c+1), byte(min(c, 1)<<4|min(c, 1)))
		}
		seg(markerSOS, append(sos, 0, 63, 0))

		var bw testBitWriter
		mcu = 0
		for i, ss := range syms {
			if ss == nil {
				mcu++
				if e.restart > 0 && mcu%e.restart == 0 && i < len(syms)-1 {
					bw.flush()
					bw.buf = append(bw.buf, 0xFF, byte(markerRST0+(mcu/e.restart-1)%8))
				}
				continue
			}
			for _, x := range ss {
				code := tables[x.table][x.class].codes[x.value]
				bw.write(code.code, code.len)
				bw.write(x.extra, x.nextra)
			}
		}
		bw.flush()
		out.Write(bw.buf)
	}
	out.Write([]byte{0xFF, markerEOI})
	return out.Bytes()
}

type testBitWriter struct {
	buf   []byte
	acc   uint64
	nbits int
}

func (w *testBitWriter) write(bits uint32, n int) {
	w.acc = w.acc<<n | uint64(bits)&(1<<n-1)
	w.nbits += n
	for w.nbits >= 8 {
		b := byte(w.acc >> (w.nbits - 8))
		w.buf = append(w.buf, b)
		if b == 0xFF {
			w.buf = append(w.buf, 0)
		}
		w.nbits -= 8
	}
}

// flush pads the last byte with 1 bits.
func (w *testBitWriter) flush() {
	if w.nbits > 0 {
		w.write(1<<(8-w.nbits)-1, 8-w.nbits)
	}
	w.acc, w.nbits = 0, 0
}

type testCode struct {
	code uint32
	len  int
}

type testHuffman struct {
	bits  [17]byte // codes of each length
	vals  []byte
	codes [256]testCode
}

// buildTestHuffman makes a Huffman table of at most 16-bit codes for the symbol counts (counts[256] is a
// reserved dummy, so no real symbol gets the all-ones code of the longest length and a lone symbol still
// gets a 1-bit code). Halving the counts until the tree is shallow enough is crude but simple.
func buildTestHuffman(counts *[257]int) testHuffman {
	freq := *counts
	freq[256] = 1
	for {
		lengths := huffmanLengths(freq[:])
		if slices.Max(lengths) <= 16 {
			var t testHuffman
			var syms []int
			for s, l := range lengths[:256] {
				if l > 0 {
					syms = append(syms, s)
				}
			}
			sort.SliceStable(syms, func(i, j int) bool { return lengths[syms[i]] < lengths[syms[j]] })
			code, prev := uint32(0), 0
			for _, s := range syms {
				l := lengths[s]
				code <<= l - prev
				prev = l
				t.codes[s] = testCode{code, l}
				t.bits[l]++
				t.vals = append(t.vals, byte(s))
				code++
			}
			return t
		}
		for i := range freq {
			if freq[i] > 0 {
				freq[i] = (freq[i] + 1) / 2
			}
		}
	}
}

// huffmanLengths returns the code length of each symbol with a non-zero count.
func huffmanLengths(freq []int) []int {
	h := &nodeHeap{}
	for s, f := range freq {
		if f > 0 {
			heap.Push(h, testNode{f, []int{s}})
		}
	}
	lengths := make([]int, len(freq))
	for h.Len() > 1 {
		a, b := heap.Pop(h).(testNode), heap.Pop(h).(testNode)
		for _, s := range a.syms {
			lengths[s]++
		}
		for _, s := range b.syms {
			lengths[s]++
		}
		heap.Push(h, testNode{a.weight + b.weight, append(append([]int{}, a.syms...), b.syms...)})
	}
	return lengths
}

type testNode struct {
	weight int
	syms   []int
}

type nodeHeap []testNode

func (h nodeHeap) Len() int           { return len(h) }
func (h nodeHeap) Less(i, j int) bool { return h[i].weight < h[j].weight }
func (h nodeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *nodeHeap) Push(x any)        { *h = append(*h, x.(testNode)) }
func (h *nodeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
