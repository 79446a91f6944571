package cpu

// Convolution as GEMM. For one image, im2col lays the input out as a (Cin*KH*KW, OH*OW) matrix whose
// column j holds the input patch under output position j, so
//
//	forward          y[n]  (Cout, P)  = w (Cout, K) * col(x[n]) (K, P)
//	backward data    dcol  (K, P)     = w^T (K, Cout) * dy[n] (Cout, P), then col2im adds it into dx[n]
//	backward filter  dw    (Cout, K) += dy[n] (Cout, P) * col(x[n])^T (P, K)
//
// with K = Cin*KH*KW and P = OH*OW. A 1x1 stride-1 unpadded convolution needs no im2col: x[n] already is
// that (Cin, H*W) matrix. The patch matrix is never written out in the forward and backward-filter passes:
// the GEMM packs its panels straight from the image (gemmOp.bConv, packBConv). A stride-1 backward data
// pass is itself a forward convolution, of dy with the flipped, transposed weights and padding K-1-pad,
// so it too writes dx directly; only strided ones go through a patch-gradient matrix and col2im.
//
// A grouped convolution is one such convolution per group: group g reads input channels
// [g*Cin/G, (g+1)*Cin/G) of each image and writes output channels [g*Cout/G, (g+1)*Cout/G) with the
// weights w[g*Cout/G : (g+1)*Cout/G], all contiguous slices, so every pass below runs on one (image, group)
// piece at a time and sees an ungrouped convolution of Cin/G to Cout/G channels.
//
// Work is split by piece when there are at least as many pieces as workers (each worker runs whole
// single-threaded GEMMs on its own scratch), otherwise pieces run one after another, each GEMM spread over
// all workers. Both give the same bits (see gemm.go). The weight gradient sums over the batch: images are
// grouped into a fixed number of chunks, each chunk accumulates into its own partial buffer, and the
// partials are added in chunk order.

import "resnet/internal/backend"

// convGeom is the geometry of one group of a convolution (Cin and Cout are a group's channels; Groups is
// at least 1) with the sizes the passes derive from it.
type convGeom struct {
	backend.ConvGeometry
	inSize, outSize   int // elements of one image of x and of y, all groups
	groupIn, groupOut int // elements of one group of one image of x and of y
	kdim, positions   int // K = Cin*KH*KW and P = OH*OW
	pointwise         bool
}

func newConvGeom(g backend.ConvGeometry) convGeom {
	g.Groups = max(g.Groups, 1)
	inSize, outSize := g.Cin*g.H*g.W, g.Cout*g.OH*g.OW
	g.Cin, g.Cout = g.GroupCin(), g.GroupCout()
	return convGeom{ConvGeometry: g, inSize: inSize, outSize: outSize, groupIn: g.Cin * g.H * g.W,
		groupOut: g.Cout * g.OH * g.OW, kdim: g.Cin * g.KH * g.KW, positions: g.OH * g.OW,
		pointwise: g.KH == 1 && g.KW == 1 && g.Stride == 1 && g.PadH == 0 && g.PadW == 0}
}

// wLen is the element count of one group's weights (Cout, K).
func (g *convGeom) wLen() int { return g.Cout * g.kdim }

// pieces is the number of (image, group) pieces of the per-image passes.
func (g *convGeom) pieces() int { return g.N * g.Groups }

// validRange returns the output positions [lo, hi) along one axis whose input coordinate
// o*stride - pad + k lies inside [0, in).
func validRange(out, in, stride, pad, k int) (lo, hi int) {
	lo = max(0, ceilDiv(pad-k, stride))
	hi = min(out, floorDiv(in-1+pad-k, stride)+1)
	return lo, max(lo, hi)
}

// patch is one row r = (c, i, j) of an image's patch matrix: the input plane of channel c, the kernel
// offsets, and the output columns [lo, hi) whose input column lies inside the image.
type patch struct {
	xc     []float32
	i, j   int
	lo, hi int
}

// patch returns row r of the patch matrix of image x (C, H, W).
func (g *convGeom) patch(x []float32, r int) patch {
	khw, hw := g.KH*g.KW, g.H*g.W
	c, ij := r/khw, r%khw
	pt := patch{xc: x[c*hw : (c+1)*hw], i: ij / g.KW, j: ij % g.KW}
	pt.lo, pt.hi = validRange(g.OW, g.W, g.Stride, g.PadW, pt.j)
	return pt
}

// pad writes image x (C, H, W) zero-padded to (C, H+2*PadH, W+2*PadW) at the start of xp, and zeroes
// the rest of xp.
func (g *convGeom) pad(xp, x []float32) {
	hp, wp := g.H+2*g.PadH, g.W+2*g.PadW
	clear(xp)
	for c := 0; c < g.Cin; c++ {
		for iy := 0; iy < g.H; iy++ {
			dst := xp[c*hp*wp+(iy+g.PadH)*wp+g.PadW:]
			copyShort(dst[:g.W], x[(c*g.H+iy)*g.W:(c*g.H+iy+1)*g.W])
		}
	}
}

// padOffset is where patch row r = (c, i, j) reads the padded image at output position (0, 0): its value
// at (oy, ox) is at padOffset(r) + oy*Stride*Wp + ox*Stride.
func (g *convGeom) padOffset(r int) int {
	khw := g.KH * g.KW
	c, ij := r/khw, r%khw
	return (c*(g.H+2*g.PadH)+ij/g.KW)*(g.W+2*g.PadW) + ij%g.KW
}

// fill writes the values of a patch row at output positions [p0, p0+len(dst)) into dst. It runs for
// every element the convolutions feed the GEMM, mostly in runs of 8 to 32, so it avoids runtime calls
// for those short runs.
func (g *convGeom) fill(dst []float32, pt *patch, p0 int) {
	ow := g.OW
	oy, ox := p0/ow, p0%ow
	iy := oy*g.Stride - g.PadH + pt.i
	base := pt.j - g.PadW
	for len(dst) > 0 {
		run := min(ow-ox, len(dst))
		out := dst[:run]
		dst = dst[run:]
		a, b := max(pt.lo, ox), min(pt.hi, ox+run)
		if uint(iy) >= uint(g.H) || a >= b {
			zero(out)
		} else {
			zero(out[:a-ox])
			zero(out[b-ox:])
			row := pt.xc[iy*g.W : (iy+1)*g.W]
			in := out[a-ox : b-ox]
			if g.Stride == 1 {
				copyShort(in, row[a+base:b+base])
			} else {
				for t := range in {
					in[t] = row[(a+t)*g.Stride+base]
				}
			}
		}
		ox = 0
		iy += g.Stride
	}
}

// copyShort is copy for short slices, eight values per move.
func copyShort(dst, src []float32) {
	if len(dst) > 64 {
		copy(dst, src)
		return
	}
	src = src[:len(dst)]
	for len(dst) >= 8 {
		// Through a local: a direct array assignment may overlap, and compiles to a call of memmove.
		v := *(*[8]float32)(src)
		*(*[8]float32)(dst) = v
		dst, src = dst[8:], src[8:]
	}
	for t, v := range src {
		dst[t] = v
	}
}

// zero is clear for short slices (a padding column or two).
func zero(s []float32) {
	if len(s) > 16 {
		clear(s)
		return
	}
	for t := range s {
		s[t] = 0
	}
}

// packBConv is packB for a B that is the patch matrix of the image g.b (or its transpose with transB),
// read from the image directly.
func (g *gemmOp) packBConv(ws *gemmScratch, kern *gemmKernel, pc, kc, jc, nc int) {
	nr, cg := kern.nr, g.bConv
	kcp := roundUp(kc, kern.kstep)
	panels := (nc + nr - 1) / nr
	ws.packB = grow(ws.packB, panels*kcp*nr)
	if !g.transB {
		// Step p of a panel is patch row pc+p at the panel's positions. Panels are written one after
		// another, so the stores stream through memory.
		ws.patches = grow(ws.patches, kc)
		pts := ws.patches
		for p := range pts {
			pts[p] = cg.patch(g.b, pc+p)
		}
		for jp := 0; jp < panels; jp++ {
			dst, c0, cols := ws.bPanel(jp, kcp, nr, kc, jc, nc)
			for p := range pts {
				cg.fill(dst[p*nr:p*nr+cols], &pts[p], c0)
			}
		}
		return
	}
	if g.bPad != nil {
		g.packBPadded(ws, kern, pc, kc, jc, nc)
		return
	}
	// Transposed: lane j of a panel is patch row c0+j at positions [pc, pc+kc). Rows are expanded eight at
	// a time into scratch and interleaved, so each store fills eight adjacent lanes.
	ws.rows = grow(ws.rows, 8*kc)
	t := ws.rows
	for jp := 0; jp < panels; jp++ {
		dst, c0, cols := ws.bPanel(jp, kcp, nr, kc, jc, nc)
		j := 0
		for ; j+8 <= cols; j += 8 {
			for q := range 8 {
				pt := cg.patch(g.b, c0+j+q)
				cg.fill(t[q*kc:(q+1)*kc], &pt, pc)
			}
			t0, t1, t2, t3 := t[:kc], t[kc:2*kc], t[2*kc:3*kc], t[3*kc:4*kc]
			t4, t5, t6, t7 := t[4*kc:5*kc], t[5*kc:6*kc], t[6*kc:7*kc], t[7*kc:8*kc]
			d := dst[j:]
			for p := range t0 {
				q := (*[8]float32)(d[p*nr : p*nr+8])
				q[0], q[1], q[2], q[3] = t0[p], t1[p], t2[p], t3[p]
				q[4], q[5], q[6], q[7] = t4[p], t5[p], t6[p], t7[p]
			}
		}
		for ; j < cols; j++ {
			row := t[:kc]
			pt := cg.patch(g.b, c0+j)
			cg.fill(row, &pt, pc)
			d := dst[j:]
			for p, v := range row {
				d[p*nr] = v
			}
		}
	}
}

// packBPadded is the transposed packBConv reading the zero-padded image g.bPad (convGeom.pad): every
// value of a patch row is there, padding included, so a lane copies runs of one output row without bounds
// tests. It writes the same panels as the unpadded path.
func (g *gemmOp) packBPadded(ws *gemmScratch, kern *gemmKernel, pc, kc, jc, nc int) {
	nr, cg, xp := kern.nr, g.bConv, g.bPad
	kcp := roundUp(kc, kern.kstep)
	panels := (nc + nr - 1) / nr
	ws.packB = grow(ws.packB, panels*kcp*nr)
	ow, s := cg.OW, cg.Stride
	rowStep := s * (cg.W + 2*cg.PadW) // padded-image distance between output rows
	oy0, ox0 := pc/ow, pc%ow
	for jp := 0; jp < panels; jp++ {
		dst, c0, cols := ws.bPanel(jp, kcp, nr, kc, jc, nc)
		for j := 0; j < cols; j += 8 {
			lanes := min(8, cols-j)
			var off [8]int
			for q := range lanes {
				off[q] = cg.padOffset(c0 + j + q)
			}
			d := dst[j:]
			oy, ox := oy0, ox0
			for p := 0; p < kc; {
				run := min(ow-ox, kc-p)
				base := oy*rowStep + ox*s
				done := 0 // positions of the run packed by packLanes8
				if lanes == 8 && s == 1 {
					if rows := (kc - p) / ow; ox == 0 && rows > 0 &&
						packLanes8(d[p*nr:], nr, xp[base:], &off, rows, ow, rowStep) {
						// Whole output rows at once.
						p += rows * ow
						oy += rows
						continue
					}
					if n := run &^ 7; n > 0 && packLanes8(d[p*nr:], nr, xp[base:], &off, 1, n, rowStep) {
						done = n
					}
				}
				if lanes == 8 {
					n := (run-1)*s + 1
					x0, x1 := xp[off[0]+base:][:n], xp[off[1]+base:][:n]
					x2, x3 := xp[off[2]+base:][:n], xp[off[3]+base:][:n]
					x4, x5 := xp[off[4]+base:][:n], xp[off[5]+base:][:n]
					x6, x7 := xp[off[6]+base:][:n], xp[off[7]+base:][:n]
					for t := done; t < run; t++ {
						i := t * s
						v := (*[8]float32)(d[(p+t)*nr : (p+t)*nr+8])
						v[0], v[1], v[2], v[3] = x0[i], x1[i], x2[i], x3[i]
						v[4], v[5], v[6], v[7] = x4[i], x5[i], x6[i], x7[i]
					}
				} else {
					for q := range lanes {
						src := xp[off[q]+base:]
						for t := range run {
							d[(p+t)*nr+q] = src[t*s]
						}
					}
				}
				p += run
				ox = 0
				oy++
			}
		}
	}
}

// col2im adds the (K, P) patch-gradient matrix col into one image's input gradient dx (C, H, W). Each
// element receives its contributions in a fixed order (row-major over (c, i, j, oy, ox)).
func col2im(dx, col []float32, g *convGeom) {
	hw, p := g.H*g.W, g.positions
	row := 0
	for c := 0; c < g.Cin; c++ {
		dc := dx[c*hw : (c+1)*hw]
		for i := 0; i < g.KH; i++ {
			for j := 0; j < g.KW; j++ {
				src := col[row*p : (row+1)*p]
				row++
				lo, hi := validRange(g.OW, g.W, g.Stride, g.PadW, j)
				if lo >= hi {
					continue
				}
				for oy := 0; oy < g.OH; oy++ {
					iy := oy*g.Stride - g.PadH + i
					if iy < 0 || iy >= g.H {
						continue
					}
					in := src[oy*g.OW : (oy+1)*g.OW]
					dst := dc[iy*g.W : (iy+1)*g.W]
					base := j - g.PadW
					if g.Stride == 1 {
						d := dst[lo+base : hi+base]
						s := in[lo:hi]
						s = s[:len(d)]
						for o, v := range s {
							d[o] += v
						}
						continue
					}
					for o := lo; o < hi; o++ {
						dst[o*g.Stride+base] += in[o]
					}
				}
			}
		}
	}
}

type convKind uint8

const (
	convForward convKind = iota
	convBackwardData
	convBackwardFilter
	convReduce
)

// convJob is the state of one convolution call. A piece is one group of an image (forward, backward
// data), one group of a batch chunk (backward filter) or a range of weight-gradient elements (reduction of
// the chunk partials).
type convJob struct {
	d          *Device
	kind       convKind
	g          convGeom
	x, w, y    []float32 // y is dy in the backward passes, x is dx in backward data
	dw         []float32
	wt         []float32 // flipped, transposed weights (Cin, Cout, KH, KW) per group of a transposed backward data
	gt         convGeom  // the forward convolution of dy with wt that a transposed backward data runs
	accumulate bool
	chunks     int // batch chunks of backward filter
	parts      int // element ranges of the reduction
}

func (j *convJob) run(worker, i int) {
	switch j.kind {
	case convForward:
		j.forward(worker, i, false)
	case convBackwardData:
		j.backwardData(worker, i, false)
	case convBackwardFilter:
		j.backwardFilter(worker, i, false)
	case convReduce:
		j.reduce(i)
	}
}

// gemm runs op on the worker's scratch, or over the whole pool when the job runs images one at a time.
// Its A is the weights in every pass but the weight gradient's, the same for every image of the call:
// a worker packs them once per call (packedWeights).
func (j *convJob) gemm(worker int, parallel bool, op gemmOp) {
	op.alpha = 1
	if parallel {
		j.d.gemmParallel(op)
		return
	}
	ws := j.d.ws[worker]
	if j.kind != convBackwardFilter {
		op.aPacked = j.packedWeights(ws, &op)
	}
	op.block(&ws.gemm, 0, op.m, 0, op.n)
}

// packedWeights returns op's A packed for all its blocks (gemmOp.packAll), packing it only when the
// worker has not yet for this call, these weights (a group's) and this kernel.
func (j *convJob) packedWeights(ws *workspace, op *gemmOp) []float32 {
	key := shiftedKey{call: j.d.convCall, w: &op.a[0], kern: ws.gemm.kernel()}
	if ws.apackKey != key {
		ws.apack = op.packAll(&ws.gemm, ws.apack)
		ws.apackKey = key
	}
	return ws.apack
}

func (j *convJob) col(worker int) []float32 {
	ws := j.d.ws[worker]
	ws.col = grow(ws.col, j.g.kdim*j.g.positions)
	return ws.col
}

// piece returns where piece i, group i%Groups of image i/Groups, starts in x, in w and in y.
func (g *convGeom) piece(i int) (x0, w0, y0 int) {
	n, grp := i/g.Groups, i%g.Groups
	return n*g.inSize + grp*g.groupIn, grp * g.wLen(), n*g.outSize + grp*g.groupOut
}

func (j *convJob) forward(worker, i int, parallel bool) {
	g := &j.g
	x0, w0, y0 := g.piece(i)
	xn, w, yn := j.x[x0:x0+g.groupIn], j.w[w0:w0+g.wLen()], j.y[y0:y0+g.groupOut]
	if j.shifted(worker, parallel, g, w, xn, yn, false) {
		return
	}
	op := gemmOp{m: g.Cout, n: g.positions, k: g.kdim, a: w, lda: g.kdim, b: xn, ldb: g.positions, c: yn, ldc: g.positions}
	if !g.pointwise {
		op.bConv = g
	}
	j.gemm(worker, parallel, op)
}

// shifted runs a stride-1 convolution of one image, y = w * patches(x) (plus y when accumulate), with a
// kernel that reads the patch matrix in place, and reports whether it did; it declines for strided and
// pointwise convolutions, kernels without a shifted form, and single images spread over the pool.
//
// The image is copied once into a zero-padded buffer of width Wp = W + 2*pad. At output position
// q = oy*Wp + ox of that padded width, patch row (c, i, j) reads the padded image at c*Hp*Wp + i*Wp + j + q,
// so every row of the patch matrix is the padded image shifted by a constant: the kernel reads step p of
// B at that offset, nr consecutive positions at a time. Positions with ox >= OW are computed and dropped.
func (j *convJob) shifted(worker int, parallel bool, g *convGeom, w, x, y []float32, accumulate bool) bool {
	ws := j.d.ws[worker]
	kern := ws.gemm.kernel()
	if parallel || kern.shifted == nil || g.Stride != 1 || g.pointwise {
		return false
	}
	hp, wp := g.H+2*g.PadH, g.W+2*g.PadW
	q := g.OH * wp // padded-width output positions
	// Rows whose width is a whole number of the kernel's columns are written straight into y, tile by
	// tile, computing no padding column (CIFAR's 32- and 16-wide maps); the others go through the
	// padded-width buffer. Both add the steps' blocks in the same order, so they give the same bits, but
	// for an accumulating call: y plus each block in turn, where the buffer adds y to their sum.
	direct := func(k *gemmKernel) bool { return g.OW%k.nr == 0 && g.Cout%k.mr == 0 }
	switch n := kern.narrow; {
	case direct(kern):
	case n != nil && direct(n):
		kern = n
	case n != nil && 10*roundUp(q, n.nr) <= 9*roundUp(q, kern.nr):
		kern = n // CIFAR's 8x8 maps: 80 positions in 96 columns of 32, or 80 of 16
	}
	mr, nr := kern.mr, kern.nr
	qr := roundUp(q, nr)        // columns of the result buffer: whole tiles only
	rows := roundUp(g.Cout, mr) // rows of the result buffer: whole tiles only

	// The padded image, with room for the last tile's reads past the end.
	lastOff := (g.Cin-1)*hp*wp + (g.KH-1)*wp + g.KW - 1
	ws.xpad = grow(ws.xpad, lastOff+qr)
	xp := ws.xpad
	g.pad(xp, x)
	j.packShifted(ws, kern, g, w)
	if direct(kern) {
		j.shiftedRows(ws, kern, g, xp, y, accumulate)
		return true
	}
	ws.cbuf = grow(ws.cbuf, rows*qr)
	cb := ws.cbuf

	shiftedBlocks(ws, kern, g, func(block []float32, offs shiftOffsets, kc, ic, mc int, add bool) {
		for jr := 0; jr < qr; jr += nr {
			b := xp[jr:]
			for ir := 0; ir < mc; ir += mr {
				kern.shifted(block[ir*kc:(ir+mr)*kc], b, offs, cb[(ic+ir)*qr+jr:], qr, add)
			}
		}
	})
	// Keep the OW valid columns of each padded-width row.
	for co := 0; co < g.Cout; co++ {
		for oy := 0; oy < g.OH; oy++ {
			src := cb[co*qr+oy*wp : co*qr+oy*wp+g.OW]
			dst := y[(co*g.OH+oy)*g.OW : (co*g.OH+oy+1)*g.OW]
			if accumulate {
				for t, v := range src {
					dst[t] += v
				}
			} else {
				copyShort(dst, src)
			}
		}
	}
	return true
}

// shiftedRows is shifted's loop for maps whose rows are whole tiles: each tile is nr columns of one output
// row of mr channels, its B read from the padded image at that row, its C the tile's place in y.
func (j *convJob) shiftedRows(ws *workspace, kern *gemmKernel, g *convGeom, xp, y []float32, accumulate bool) {
	mr, nr, wp, plane := kern.mr, kern.nr, g.W+2*g.PadW, g.OH*g.OW
	shiftedBlocks(ws, kern, g, func(block []float32, offs shiftOffsets, kc, ic, mc int, add bool) {
		for oy := 0; oy < g.OH; oy++ {
			for ox := 0; ox < g.OW; ox += nr {
				b := xp[oy*wp+ox:]
				for ir := 0; ir < mc; ir += mr {
					kern.shifted(block[ir*kc:(ir+mr)*kc], b, offs, y[(ic+ir)*plane+oy*g.OW+ox:], plane, add || accumulate)
				}
			}
		}
	})
}

// shiftedBlocks calls f for each block of the weights packShifted left in ws, in the order it packed them:
// steps [pc, pc+kc) (their offsets offs) of output channels [ic, ic+mc); add is false for the first steps.
func shiftedBlocks(ws *workspace, kern *gemmKernel, g *convGeom, f func(block []float32, offs shiftOffsets, kc, ic, mc int, add bool)) {
	mcMax := roundUp(gemmMC, kern.mr)
	packed := ws.wpack
	for pc := 0; pc < g.kdim; pc += kern.kc {
		kc := min(kern.kc, g.kdim-pc)
		offs := newShiftOffsets(ws.offs[pc : pc+kc])
		for ic := 0; ic < g.Cout; ic += mcMax {
			mc := min(mcMax, g.Cout-ic)
			block := packed[:roundUp(mc, kern.mr)*kc]
			packed = packed[len(block):]
			f(block, offs, kc, ic, mc, pc > 0)
		}
	}
}

// packShifted leaves in the worker's scratch what shifted needs of the weights w and the geometry of
// one call: the patch rows' byte offsets into the padded image (ws.offs), and the packed blocks of w in the
// order shifted visits them (ws.wpack). Every image of the call reuses them, so a worker packs the weights
// once per call rather than once per image (a new call may bring new weights at the same address).
func (j *convJob) packShifted(ws *workspace, kern *gemmKernel, g *convGeom, w []float32) {
	key := shiftedKey{call: j.d.convCall, w: &w[0], kern: kern}
	if ws.wpackKey == key {
		return
	}
	ws.wpackKey = key
	ws.offs = grow(ws.offs, g.kdim)
	for r := range ws.offs {
		ws.offs[r] = 4 * g.padOffset(r)
	}
	op := gemmOp{m: g.Cout, k: g.kdim, alpha: 1, a: w, lda: g.kdim}
	mr, mcMax := kern.mr, roundUp(gemmMC, kern.mr)
	ws.wpack = ws.wpack[:0]
	for pc := 0; pc < g.kdim; pc += kern.kc {
		kc := min(kern.kc, g.kdim-pc)
		for ic := 0; ic < g.Cout; ic += mcMax {
			mc := min(mcMax, g.Cout-ic)
			op.packA(&ws.gemm, kern, ic, mc, pc, kc)
			ws.wpack = append(ws.wpack, ws.gemm.packA[:roundUp(mc, mr)*kc]...)
		}
	}
}

// shiftedKey names the weights packed in a worker's scratch: the convolution call, the weights' address
// (a group's, for grouped convolutions) and the kernel they are packed for.
type shiftedKey struct {
	call uint64
	w    *float32
	kern *gemmKernel
}

// transposable reports whether backward data can run as the forward convolution of dy with flipped
// weights: stride 1 and a padding no wider than the kernel allows on each axis.
func (g *convGeom) transposable() bool {
	return g.Stride == 1 && g.PadH <= g.KH-1 && g.PadW <= g.KW-1
}

// transposed is the geometry of that forward convolution for one group: dy (Cout, OH, OW) in, dx (Cin, H,
// W) out.
func (g *convGeom) transposed() convGeom {
	return newConvGeom(backend.ConvGeometry{N: g.N, Cin: g.Cout, H: g.OH, W: g.OW, Cout: g.Cin, KH: g.KH, KW: g.KW,
		Stride: 1, PadH: g.KH - 1 - g.PadH, PadW: g.KW - 1 - g.PadW, OH: g.H, OW: g.W, Groups: 1})
}

// flipWeights writes, for each group, wt (Cin, Cout, KH, KW) with wt[ci, co, i, j] = w[co, ci, KH-1-i, KW-1-j]
// at the group's offset in w.
func flipWeights(wt, w []float32, g *convGeom) {
	khw := g.KH * g.KW
	for grp := 0; grp < g.Groups; grp++ {
		wg, wtg := w[grp*g.wLen():(grp+1)*g.wLen()], wt[grp*g.wLen():(grp+1)*g.wLen()]
		for co := 0; co < g.Cout; co++ {
			for ci := 0; ci < g.Cin; ci++ {
				src := wg[(co*g.Cin+ci)*khw : (co*g.Cin+ci+1)*khw]
				dst := wtg[(ci*g.Cout+co)*khw : (ci*g.Cout+co+1)*khw]
				for q, v := range src {
					dst[khw-1-q] = v
				}
			}
		}
	}
}

func (j *convJob) backwardData(worker, i int, parallel bool) {
	g := &j.g
	x0, w0, y0 := g.piece(i)
	dxn, w, dyn := j.x[x0:x0+g.groupIn], j.w[w0:w0+g.wLen()], j.y[y0:y0+g.groupOut]
	var beta float32
	if j.accumulate {
		beta = 1
	}
	if g.pointwise {
		j.gemm(worker, parallel, gemmOp{transA: true, m: g.Cin, n: g.positions, k: g.Cout, a: w, lda: g.Cin, b: dyn,
			ldb: g.positions, beta: beta, c: dxn, ldc: g.positions})
		return
	}
	if j.wt != nil {
		t, wt := &j.gt, j.wt[w0:w0+g.wLen()]
		if j.shifted(worker, parallel, t, wt, dyn, dxn, j.accumulate) {
			return
		}
		j.gemm(worker, parallel, gemmOp{m: t.Cout, n: t.positions, k: t.kdim, a: wt, lda: t.kdim, b: dyn, beta: beta,
			c: dxn, ldc: t.positions, bConv: t})
		return
	}
	col := j.col(worker)
	j.gemm(worker, parallel, gemmOp{transA: true, m: g.kdim, n: g.positions, k: g.Cout, a: w, lda: g.kdim, b: dyn,
		ldb: g.positions, c: col, ldc: g.positions})
	if !j.accumulate {
		clear(dxn)
	}
	col2im(dxn, col, g)
}

// backwardFilter accumulates the weight gradient of one group of batch chunk i/Groups into its partial
// buffer (or straight into dw when there is one chunk).
func (j *convJob) backwardFilter(worker, i int, parallel bool) {
	g := &j.g
	c, grp := i/g.Groups, i%g.Groups
	dst := j.dw
	if j.chunks > 1 {
		dst = j.d.partial[c*len(j.dw) : (c+1)*len(j.dw)]
	}
	dst = dst[grp*g.wLen() : (grp+1)*g.wLen()]
	lo, hi := split(g.N, j.chunks, c)
	if !parallel && j.filterShifted(worker, dst, lo, hi, grp) {
		return
	}
	for n := lo; n < hi; n++ {
		var beta float32
		if n > lo {
			beta = 1
		}
		xn, dyn := j.filterImage(n, grp)
		op := gemmOp{transB: true, m: g.Cout, n: g.kdim, k: g.positions, a: dyn, lda: g.positions, b: xn,
			ldb: g.positions, beta: beta, c: dst, ldc: g.kdim}
		if !g.pointwise {
			op.bConv, op.bPad = g, j.padded(worker, xn)
		}
		j.gemm(worker, parallel, op)
	}
}

// filterImage is group grp of image n in a weight-gradient pass: its input x and its output gradient dy.
func (j *convJob) filterImage(n, grp int) (x, dy []float32) {
	g := &j.g
	return j.x[n*g.inSize+grp*g.groupIn : n*g.inSize+(grp+1)*g.groupIn],
		j.y[n*g.outSize+grp*g.groupOut : n*g.outSize+(grp+1)*g.groupOut]
}

// padded returns image x zero-padded (convGeom.pad) in the worker's scratch, or x itself when the
// convolution has no padding.
func (j *convJob) padded(worker int, x []float32) []float32 {
	g := &j.g
	if g.PadH == 0 && g.PadW == 0 {
		return x
	}
	ws := j.d.ws[worker]
	ws.xpad = grow(ws.xpad, g.Cin*(g.H+2*g.PadH)*(g.W+2*g.PadW))
	g.pad(ws.xpad, x)
	return ws.xpad
}

// reduce adds the chunk partials of one range of weight-gradient elements, in chunk order.
func (j *convJob) reduce(part int) {
	size := len(j.dw)
	lo, hi := split(size, j.parts, part)
	dst := j.dw[lo:hi]
	copy(dst, j.d.partial[lo:hi])
	for c := 1; c < j.chunks; c++ {
		src := j.d.partial[c*size+lo : c*size+hi]
		src = src[:len(dst)]
		for i, v := range src {
			dst[i] += v
		}
	}
}

// runImages runs a per-image pass: by (image, group) piece when every worker can get one, else piece by
// piece with parallel GEMMs.
func (d *Device) runImages(j *convJob, pass func(j *convJob, worker, i int, parallel bool)) {
	if j.g.pieces() >= len(d.ws) {
		d.runSharingScratch(j, j.g.pieces())
		return
	}
	for i := 0; i < j.g.pieces(); i++ {
		pass(j, 0, i, true)
	}
}

// ConvForward implements backend.Device.
func (d *Device) ConvForward(p backend.ConvParams, x, w, y backend.Tensor) error {
	g, err := backend.CheckConvForward(p, x, w, y)
	v := views{op: "ConvForward", err: named(err)}
	d.convCall++
	j := &d.jobs.conv
	*j = convJob{d: d, kind: convForward, g: newConvGeom(g), x: v.f32("x", x), w: v.f32("w", w), y: v.f32("y", y)}
	if v.err == nil {
		d.runImages(j, (*convJob).forward)
	}
	*j = convJob{}
	return v.err
}

// ConvBackwardData implements backend.Device.
func (d *Device) ConvBackwardData(p backend.ConvParams, dy, w, dx backend.Tensor, accumulate bool) error {
	cg, err := backend.CheckConvBackwardData(p, dy, w, dx)
	v := views{op: "ConvBackwardData", err: named(err)}
	g := newConvGeom(cg)
	d.convCall++
	j := &d.jobs.conv
	*j = convJob{d: d, kind: convBackwardData, g: g, x: v.f32("dx", dx), w: v.f32("w", w), y: v.f32("dy", dy),
		accumulate: accumulate}
	if v.err != nil {
		*j = convJob{}
		return v.err
	}
	if !g.pointwise && g.transposable() {
		d.flipped = grow(d.flipped, len(j.w))
		flipWeights(d.flipped, j.w, &g)
		j.wt, j.gt = d.flipped, g.transposed()
	}
	d.runImages(j, (*convJob).backwardData)
	*j = convJob{}
	return nil
}

// filterChunkElems bounds the memory of the backward-filter partials (64 MiB); past it the batch is cut
// into fewer chunks.
const filterChunkElems = 1 << 24

// filterChunks is the number of batch chunks of a weight-gradient reduction. It depends only on the
// shapes, so the summation order (and the result) is the same for any worker count.
func filterChunks(n, size int) int {
	c := min(n, 16)
	if size > 0 && c*size > filterChunkElems {
		c = max(1, filterChunkElems/size)
	}
	return max(c, 1)
}

// ConvBackwardFilter implements backend.Device.
func (d *Device) ConvBackwardFilter(p backend.ConvParams, x, dy, dw backend.Tensor) error {
	cg, err := backend.CheckConvBackwardFilter(p, x, dy, dw)
	v := views{op: "ConvBackwardFilter", err: named(err)}
	xv, dyv, dwv := v.f32("x", x), v.f32("dy", dy), v.f32("dw", dw)
	if v.err != nil || cg.N == 0 {
		clear(dwv) // no images: a zero gradient
		return v.err
	}
	g := newConvGeom(cg)
	size := len(dwv)
	j := &d.jobs.conv
	*j = convJob{d: d, kind: convBackwardFilter, g: g, x: xv, y: dyv, dw: dwv, chunks: filterChunks(g.N, size)}
	if j.chunks > 1 {
		d.partial = grow(d.partial, j.chunks*size)
	}
	if pieces := j.chunks * g.Groups; pieces >= len(d.ws) {
		d.runSharingScratch(j, pieces)
	} else {
		for i := 0; i < pieces; i++ {
			j.backwardFilter(0, i, true)
		}
	}
	if j.chunks > 1 {
		j.kind = convReduce
		j.parts = min(4*len(d.ws), (size+4095)/4096)
		d.pool.run(j, j.parts)
	}
	*j = convJob{}
	return nil
}
