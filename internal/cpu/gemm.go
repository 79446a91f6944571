package cpu

// Single-precision matrix multiply, blocked the usual way (Goto/BLIS): C is cut into column panels of
// about gemmNC, the inner dimension into blocks of the kernel's kc and the rows into blocks of about
// gemmMC; each block of A and panel of B is packed into contiguous micro-panels so the micro-kernel streams
// both from cache, and the micro-kernel keeps an mr x nr tile of C in registers. The micro-kernel is chosen
// at run time (gemm_amd64.go: AVX-512 or AVX2 assembly where the CPU has it, else the portable Go kernel).
//
// Determinism: an element of C is always accumulated over the same kc blocks in the same order by the same
// micro-kernel (edge tiles go through a scratch tile rather than a second kernel), so its value depends
// only on the kernel, not on how C is split among workers. That is what lets callers choose freely between
// one multi-threaded GEMM and many single-threaded ones.

const (
	gemmMC = 128 // rows of a packed A block, rounded up to the kernel's mr (about 128 KiB at kc 256: L2)
	gemmNC = 512 // columns of a packed B panel, rounded up to the kernel's nr
)

// gemmKernel is one micro-kernel: fn computes the mr x nr tile sum_p a[p*mr+i]*b[p*nr+j] over kc packed
// steps and stores it into c (row stride ldc), or adds it to c when add is set. Packed panels hold a
// multiple of kstep steps (zero-padded), and the inner dimension is blocked by kc.
type gemmKernel struct {
	name   string
	mr, nr int
	kc     int
	kstep  int
	fn     func(kc int, a, b, c []float32, ldc int, add bool)
	// shifted, when the kernel has it, is fn with step p of B read from b[offs[p]/4:] (offs in bytes)
	// instead of a packed panel: the stride-1 convolutions use it to read their patch matrix in place
	// (conv.go, convShifted).
	shifted func(a, b []float32, offs shiftOffsets, c []float32, ldc int, add bool)
	// narrow, when set, is a shifted kernel of the same instruction set with fewer columns, for the
	// small maps whose padded-width positions it covers with a tenth fewer computed columns (convJob.shifted).
	// Both sum every output in step order, so they give the same bits.
	narrow *gemmKernel
}

// shiftOffsets are the byte offsets of the steps of a shifted B with their least and greatest, so a
// kernel call checks its reads with two comparisons rather than one per step.
type shiftOffsets struct {
	offs   []int
	lo, hi int
}

func newShiftOffsets(offs []int) shiftOffsets {
	s := shiftOffsets{offs: offs}
	if len(offs) > 0 {
		s.lo, s.hi = offs[0], offs[0]
	}
	for _, o := range offs {
		s.lo, s.hi = min(s.lo, o), max(s.hi, o)
	}
	return s
}

// gemmKernelGo is the portable kernel, written for a 2x4 tile: Go keeps at most 15 float registers live on
// amd64 and does not vectorise, so 2x4 accumulators plus the operands of one step fit without spilling;
// 4x4 and larger spilled and measured slower. Panels hold two k steps per iteration so the loop has no
// remainder (an odd kc is padded with a zero step).
var gemmKernelGo = gemmKernel{name: "go", mr: 2, nr: 4, kc: 256, kstep: 2, fn: gemmTileGo}

// gemmKernels lists the kernels this machine can run, fastest first; gemmDefault is the one a scratch
// without an explicit kernel uses.
var (
	gemmKernels = append(archGemmKernels(), gemmKernelGo)
	gemmDefault = &gemmKernels[0]
)

// gemmKernelNamed returns the available kernel with the given name, or nil.
func gemmKernelNamed(name string) *gemmKernel {
	for i := range gemmKernels {
		if gemmKernels[i].name == name {
			return &gemmKernels[i]
		}
	}
	return nil
}

// gemmScratch holds one worker's kernel choice, packed blocks and edge tile.
type gemmScratch struct {
	kern  *gemmKernel // nil: gemmDefault
	packA []float32
	packB []float32
	tile  []float32
	// Patch rows being packed into B (packBConv).
	rows    []float32
	patches []patch
}

func (ws *gemmScratch) kernel() *gemmKernel {
	if ws.kern == nil {
		return gemmDefault
	}
	return ws.kern
}

// gemmOp is one call C = alpha*op(A)*op(B) + beta*C on row-major matrices: op(A) is m x k, op(B) is k x n,
// C is m x n with row stride ldc. With transA, A is stored k x m (row stride lda), else m x k; likewise
// for B. beta == 0 overwrites C without reading it (NaNs in C do not propagate), as BLAS does.
type gemmOp struct {
	transA, transB bool
	m, n, k        int
	alpha          float32
	a              []float32
	lda            int
	b              []float32
	ldb            int
	beta           float32
	c              []float32
	ldc            int
	// bConv, when set, makes op(B) the im2col patch matrix (K, P) of the image b (its transpose with
	// transB), packed straight from the image without materialising the matrix; ldb is unused.
	bConv *convGeom
	// bPad, with bConv and transB, is the image b zero-padded (convGeom.pad), which packBConv reads instead.
	bPad []float32
	// aPacked, when set, is op(A) already packed for every block block() visits over the whole of m, in
	// its order (packAll): a convolution's weights, packed once per call instead of once per image.
	aPacked []float32
}

// sgemm computes C = alpha*op(A)*op(B) + beta*C on the calling goroutine (see gemmOp for the layout).
func sgemm(ws *gemmScratch, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int) {
	g := gemmOp{transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
		beta: beta, c: c, ldc: ldc}
	g.block(ws, 0, m, 0, n)
}

// roundUp is n rounded up to a multiple of m.
func roundUp(n, m int) int { return (n + m - 1) / m * m }

// block computes rows [i0, i1) and columns [j0, j1) of C.
func (g *gemmOp) block(ws *gemmScratch, i0, i1, j0, j1 int) {
	if i0 >= i1 || j0 >= j1 {
		return
	}
	if g.k == 0 || g.alpha == 0 {
		g.scaleC(i0, i1, j0, j1, g.beta)
		return
	}
	if g.beta != 0 && g.beta != 1 {
		g.scaleC(i0, i1, j0, j1, g.beta)
	}
	kern := ws.kernel()
	mcMax, ncMax := roundUp(gemmMC, kern.mr), roundUp(gemmNC, kern.nr)
	prepacked := g.aPacked != nil && i0 == 0 && i1 == g.m
	for jc := j0; jc < j1; jc += ncMax {
		nc := min(ncMax, j1-jc)
		packed := g.aPacked
		for pc := 0; pc < g.k; pc += kern.kc {
			kc := min(kern.kc, g.k-pc)
			add := pc > 0 || g.beta != 0
			if g.bConv != nil {
				g.packBConv(ws, kern, pc, kc, jc, nc)
			} else {
				g.packB(ws, kern, pc, kc, jc, nc)
			}
			for ic := i0; ic < i1; ic += mcMax {
				mc := min(mcMax, i1-ic)
				var a []float32
				if prepacked {
					n := roundUp(mc, kern.mr) * roundUp(kc, kern.kstep)
					a, packed = packed[:n], packed[n:]
				} else {
					g.packA(ws, kern, ic, mc, pc, kc)
					a = ws.packA
				}
				g.macro(ws, kern, a, ic, mc, jc, nc, kc, add)
			}
		}
	}
}

// packAll packs op(A) into dst for every block that block() visits over the whole of m, in its order, and
// returns it: the aPacked of the same op over other B.
func (g *gemmOp) packAll(ws *gemmScratch, dst []float32) []float32 {
	kern := ws.kernel()
	mcMax := roundUp(gemmMC, kern.mr)
	dst = dst[:0]
	for pc := 0; pc < g.k; pc += kern.kc {
		kc := min(kern.kc, g.k-pc)
		for ic := 0; ic < g.m; ic += mcMax {
			mc := min(mcMax, g.m-ic)
			g.packA(ws, kern, ic, mc, pc, kc)
			dst = append(dst, ws.packA[:roundUp(mc, kern.mr)*roundUp(kc, kern.kstep)]...)
		}
	}
	return dst
}

// scaleC sets C = beta*C over a region (beta == 0 writes zeros).
func (g *gemmOp) scaleC(i0, i1, j0, j1 int, beta float32) {
	for i := i0; i < i1; i++ {
		row := g.c[i*g.ldc+j0 : i*g.ldc+j1]
		if beta == 0 {
			clear(row)
			continue
		}
		if beta == 1 {
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}

// packA copies alpha*op(A)[ic:ic+mc, pc:pc+kc] into micro-panels of mr rows (step p of a panel at
// p*mr), zero-padding the last panel's missing rows and the steps past kc up to a multiple of kstep.
func (g *gemmOp) packA(ws *gemmScratch, kern *gemmKernel, ic, mc, pc, kc int) {
	mr := kern.mr
	kcp := roundUp(kc, kern.kstep)
	panels := (mc + mr - 1) / mr
	ws.packA = grow(ws.packA, panels*kcp*mr)
	alpha := g.alpha
	for ip := 0; ip < panels; ip++ {
		dst := ws.packA[ip*kcp*mr : (ip+1)*kcp*mr]
		clear(dst[kc*mr:])
		r0 := ic + ip*mr
		rows := min(mr, ic+mc-r0)
		if rows < mr {
			clear(dst[:kc*mr])
		}
		if g.transA {
			// A is k x m: the rows of one k step are contiguous.
			for p := 0; p < kc; p++ {
				src := g.a[(pc+p)*g.lda+r0:]
				src = src[:rows]
				d := dst[p*mr : p*mr+rows]
				for i, v := range src {
					d[i] = alpha * v
				}
			}
			continue
		}
		// A is m x k: transpose blocks of 8 rows (packLanes8) or 4 so each read walks contiguous memory and
		// each write fills adjacent lanes.
		i := 0
		if n := kc &^ 7; alpha == 1 && rows == 8 && mr == 8 && n > 0 {
			var off [8]int
			for q := range off {
				off[q] = (r0+q)*g.lda + pc
			}
			if packLanes8(dst, mr, g.a, &off, 1, n, 0) {
				for q := range 8 {
					src := g.a[off[q]+n : off[q]+kc]
					for p, v := range src {
						dst[(n+p)*mr+q] = v
					}
				}
				continue
			}
		}
		for ; i+4 <= rows; i += 4 {
			s0 := g.a[(r0+i)*g.lda+pc:]
			s1 := g.a[(r0+i+1)*g.lda+pc:]
			s2 := g.a[(r0+i+2)*g.lda+pc:]
			s3 := g.a[(r0+i+3)*g.lda+pc:]
			s0, s1, s2, s3 = s0[:kc], s1[:kc], s2[:kc], s3[:kc]
			d := dst[i:]
			for p := range s0 {
				q := (*[4]float32)(d[p*mr : p*mr+4])
				q[0], q[1], q[2], q[3] = alpha*s0[p], alpha*s1[p], alpha*s2[p], alpha*s3[p]
			}
		}
		for ; i < rows; i++ {
			src := g.a[(r0+i)*g.lda+pc:]
			src = src[:kc]
			d := dst[i:]
			for p, v := range src {
				d[p*mr] = alpha * v
			}
		}
	}
}

// packB copies op(B)[pc:pc+kc, jc:jc+nc] into micro-panels of nr columns, zero-padding like packA.
func (g *gemmOp) packB(ws *gemmScratch, kern *gemmKernel, pc, kc, jc, nc int) {
	nr := kern.nr
	kcp := roundUp(kc, kern.kstep)
	panels := (nc + nr - 1) / nr
	ws.packB = grow(ws.packB, panels*kcp*nr)
	for jp := 0; jp < panels; jp++ {
		dst, c0, cols := ws.bPanel(jp, kcp, nr, kc, jc, nc)
		if !g.transB {
			// B is k x n: the columns of one k step are contiguous (the im2col matrix of a convolution).
			for p := 0; p < kc; p++ {
				src := g.b[(pc+p)*g.ldb+c0:]
				copy(dst[p*nr:p*nr+cols], src[:cols])
			}
			continue
		}
		// B is n x k (the im2col matrix in a weight gradient): transpose blocks of 4 stored rows so each
		// read walks contiguous memory.
		ldb := g.ldb
		j := 0
		for ; j+4 <= cols; j += 4 {
			r0 := g.b[(c0+j)*ldb+pc:]
			r1 := g.b[(c0+j+1)*ldb+pc:]
			r2 := g.b[(c0+j+2)*ldb+pc:]
			r3 := g.b[(c0+j+3)*ldb+pc:]
			r0, r1, r2, r3 = r0[:kc], r1[:kc], r2[:kc], r3[:kc]
			d := dst[j:]
			for p := range r0 {
				q := (*[4]float32)(d[p*nr : p*nr+4])
				q[0], q[1], q[2], q[3] = r0[p], r1[p], r2[p], r3[p]
			}
		}
		for ; j < cols; j++ {
			src := g.b[(c0+j)*ldb+pc:]
			src = src[:kc]
			d := dst[j:]
			for p, v := range src {
				d[p*nr] = v
			}
		}
	}
}

// bPanel returns panel jp of the packed B (kcp steps of nr columns) with what the packing will not write
// zeroed (the columns past the matrix, the steps past kc), and the panel's first column and column count.
func (ws *gemmScratch) bPanel(jp, kcp, nr, kc, jc, nc int) (dst []float32, c0, cols int) {
	dst = ws.packB[jp*kcp*nr : (jp+1)*kcp*nr]
	c0 = jc + jp*nr
	cols = min(nr, jc+nc-c0)
	if cols < nr {
		clear(dst)
	} else {
		clear(dst[kc*nr:])
	}
	return dst, c0, cols
}

// macro multiplies the packed A block pa by the packed B panel into C[ic:ic+mc, jc:jc+nc].
func (g *gemmOp) macro(ws *gemmScratch, kern *gemmKernel, pa []float32, ic, mc, jc, nc, kc int, add bool) {
	mr, nr := kern.mr, kern.nr
	ldc, kcp := g.ldc, roundUp(kc, kern.kstep)
	ws.tile = grow(ws.tile, mr*nr)
	for jr := 0; jr < nc; jr += nr {
		b := ws.packB[(jr/nr)*kcp*nr : (jr/nr+1)*kcp*nr]
		cols := min(nr, nc-jr)
		for ir := 0; ir < mc; ir += mr {
			a := pa[(ir/mr)*kcp*mr : (ir/mr+1)*kcp*mr]
			rows := min(mr, mc-ir)
			off := (ic+ir)*ldc + jc + jr
			if rows == mr && cols == nr {
				kern.fn(kcp, a, b, g.c[off:], ldc, add)
				continue
			}
			// Edge tile: run the same kernel on a full scratch tile so every element of C goes through
			// identical arithmetic.
			t := ws.tile
			if add {
				for i := 0; i < rows; i++ {
					copy(t[i*nr:i*nr+cols], g.c[off+i*ldc:off+i*ldc+cols])
				}
			}
			kern.fn(kcp, a, b, t, nr, add)
			for i := 0; i < rows; i++ {
				copy(g.c[off+i*ldc:off+i*ldc+cols], t[i*nr:i*nr+cols])
			}
		}
	}
}

// gemmTileGo is the portable 2x4 micro-kernel (see gemmKernelGo); kc is even. Each iteration does two k
// steps with the additions kept in k order; that measured fastest: Go schedules all products of an
// iteration before the loop-carried additions, and with two steps the first step's additions issue early.
func gemmTileGo(kc int, a, b, c []float32, ldc int, add bool) {
	var c00, c01, c02, c03 float32
	var c10, c11, c12, c13 float32
	a, b = a[:2*kc], b[:4*kc]
	for len(a) >= 4 && len(b) >= 8 {
		ap, bp := (*[4]float32)(a), (*[8]float32)(b)
		a, b = a[4:], b[8:]
		x0, x1 := ap[0], ap[1]
		y0, y1, y2, y3 := bp[0], bp[1], bp[2], bp[3]
		c00 += x0 * y0
		c10 += x1 * y0
		c01 += x0 * y1
		c11 += x1 * y1
		c02 += x0 * y2
		c12 += x1 * y2
		c03 += x0 * y3
		c13 += x1 * y3
		x0, x1 = ap[2], ap[3]
		y0, y1, y2, y3 = bp[4], bp[5], bp[6], bp[7]
		c00 += x0 * y0
		c10 += x1 * y0
		c01 += x0 * y1
		c11 += x1 * y1
		c02 += x0 * y2
		c12 += x1 * y2
		c03 += x0 * y3
		c13 += x1 * y3
	}
	r0 := (*[4]float32)(c[0:4])
	r1 := (*[4]float32)(c[ldc : ldc+4])
	if add {
		r0[0] += c00
		r0[1] += c01
		r0[2] += c02
		r0[3] += c03
		r1[0] += c10
		r1[1] += c11
		r1[2] += c12
		r1[3] += c13
		return
	}
	r0[0], r0[1], r0[2], r0[3] = c00, c01, c02, c03
	r1[0], r1[1], r1[2], r1[3] = c10, c11, c12, c13
}

// gemmJob runs one gemmOp as a grid of tiles of C, one tile per piece.
type gemmJob struct {
	d            *Device
	op           gemmOp
	tileM, tileN int
	tilesN       int
}

func (j *gemmJob) run(worker, i int) {
	ti, tj := i/j.tilesN, i%j.tilesN
	i0, j0 := ti*j.tileM, tj*j.tileN
	j.op.block(&j.d.ws[worker].gemm, i0, min(i0+j.tileM, j.op.m), j0, min(j0+j.tileN, j.op.n))
}

// gemmParallelMin is the work (m*n*k) below which a GEMM runs on one goroutine: waking the helpers costs
// more than it saves.
const gemmParallelMin = 1 << 17

// sgemmParallel is sgemm spread over the worker pool. It produces exactly the bits sgemm produces.
func (d *Device) sgemmParallel(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int) {
	d.gemmParallel(gemmOp{transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b,
		ldb: ldb, beta: beta, c: c, ldc: ldc})
}

// gemmParallel runs op over the worker pool.
func (d *Device) gemmParallel(op gemmOp) {
	m, n := op.m, op.n
	workers := len(d.ws)
	if workers == 1 || m*n*op.k < gemmParallelMin {
		op.block(&d.ws[0].gemm, 0, m, 0, n)
		return
	}
	// Shrink the tiles until there are a few per worker for load balance, keeping them multiples of the
	// register tile; the tile shape changes only which worker computes an element, not its value.
	kern := d.ws[0].gemm.kernel()
	tileM, tileN := roundUp(gemmMC, kern.mr), roundUp(gemmNC, kern.nr)
	for {
		tiles := ((m + tileM - 1) / tileM) * ((n + tileN - 1) / tileN)
		if tiles >= 4*workers {
			break
		}
		if tileN >= tileM && tileN > 8*kern.nr {
			tileN = roundUp(tileN/2, kern.nr)
		} else if tileM > 8*kern.mr {
			tileM = roundUp(tileM/2, kern.mr)
		} else {
			break
		}
	}
	j := &d.jobs.gemm
	*j = gemmJob{d: d, op: op, tileM: tileM, tileN: tileN, tilesN: (n + tileN - 1) / tileN}
	d.runSharingScratch(j, ((m+tileM-1)/tileM)*j.tilesN)
	j.op = gemmOp{} // drop the references to the caller's slices
}

// useGemmKernel makes every worker of d run kern (tests and benchmarks compare kernels with it).
func (d *Device) useGemmKernel(kern *gemmKernel) {
	for _, ws := range d.ws {
		ws.gemm.kern = kern
	}
}
