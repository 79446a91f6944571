package cpu

// Single-precision matrix multiply, blocked the usual way (Goto/BLIS): C is cut into column panels of
// gemmNC, the inner dimension into blocks of gemmKC and the rows into blocks of gemmMC; each block of A
// and panel of B is packed into contiguous micro-panels so the micro-kernel streams both from cache, and
// the micro-kernel keeps a gemmMR x gemmNR tile of C in local variables.
//
// Determinism: an element of C is always accumulated over the same kc blocks in the same order by the same
// micro-kernel (edge tiles go through a scratch tile rather than a second kernel), so its value depends
// only on gemmKC, not on how C is split among workers. That is what lets callers choose freely between
// one multi-threaded GEMM and many single-threaded ones.

const (
	gemmMR = 2   // rows of the register tile
	gemmNR = 4   // columns of the register tile
	gemmKC = 256 // inner-dimension block: an A micro-panel (2 KiB) and a B micro-panel (4 KiB) stay in L1
	gemmMC = 128 // rows of a packed A block (128 KiB, L2)
	gemmNC = 512 // columns of a packed B panel (512 KiB)
)

// Go keeps at most 15 float registers live on amd64 and does not vectorise, so the register tile is small:
// 2x4 accumulators plus the operands of one step fit without spilling; 4x4 and larger spilled and measured
// slower. Packed panels hold two k steps per element so the kernel's unrolled loop is a plain range with
// no bounds checks and no remainder (an odd kc is padded with a zero step). An assembly kernel can
// replace gemmKernel (and these two panel types) without touching the rest.
type (
	aPanel [2 * gemmMR]float32 // two k steps of an A micro-panel, gemmMR rows each
	bPanel [2 * gemmNR]float32 // two k steps of a B micro-panel, gemmNR columns each
)

// gemmKernel and the fast paths of packB are written out for a 2x4 tile: this constant stops the build
// if the tile constants change without them.
const _ = uint(gemmMR-2) + uint(2-gemmMR) + uint(gemmNR-4) + uint(4-gemmNR)

// gemmScratch holds one worker's packed blocks and its edge tile.
type gemmScratch struct {
	packA []aPanel
	packB []bPanel
	tile  [gemmMR * gemmNR]float32
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
}

// sgemm computes C = alpha*op(A)*op(B) + beta*C on the calling goroutine (see gemmOp for the layout).
func sgemm(ws *gemmScratch, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int) {
	g := gemmOp{transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc}
	g.block(ws, 0, m, 0, n)
}

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
	for jc := j0; jc < j1; jc += gemmNC {
		nc := min(gemmNC, j1-jc)
		for pc := 0; pc < g.k; pc += gemmKC {
			kc := min(gemmKC, g.k-pc)
			add := pc > 0 || g.beta != 0
			g.packB(ws, pc, kc, jc, nc)
			for ic := i0; ic < i1; ic += gemmMC {
				mc := min(gemmMC, i1-ic)
				g.packA(ws, ic, mc, pc, kc)
				g.macro(ws, ic, mc, jc, nc, kc, add)
			}
		}
	}
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

// packA copies alpha*op(A)[ic:ic+mc, pc:pc+kc] into micro-panels of gemmMR rows, zero-padding the last
// panel's missing rows and, for odd kc, the missing second step of the last pair.
func (g *gemmOp) packA(ws *gemmScratch, ic, mc, pc, kc int) {
	panels, kcp := (mc+gemmMR-1)/gemmMR, (kc+1)/2
	ws.packA = grow(ws.packA, panels*kcp)
	alpha := g.alpha
	for ip := 0; ip < panels; ip++ {
		dst := ws.packA[ip*kcp : (ip+1)*kcp]
		if kc%2 == 1 {
			clear(dst[kcp-1][gemmMR:])
		}
		r0 := ic + ip*gemmMR
		rows := min(gemmMR, ic+mc-r0)
		for i := rows; i < gemmMR; i++ {
			for q := range dst {
				dst[q][i], dst[q][gemmMR+i] = 0, 0
			}
		}
		if g.transA {
			// A is k x m: the rows of one k step are contiguous.
			for p := 0; p < kc; p++ {
				src := g.a[(pc+p)*g.lda+r0:]
				src = src[:rows]
				d := dst[p>>1][(p&1)*gemmMR:]
				for i, v := range src {
					d[i] = alpha * v
				}
			}
			continue
		}
		// A is m x k: walk each row into its lane of the panel.
		for i := 0; i < rows; i++ {
			src := g.a[(r0+i)*g.lda+pc:]
			src = src[:kc]
			for p, v := range src {
				dst[p>>1][(p&1)*gemmMR+i] = alpha * v
			}
		}
	}
}

// packB copies op(B)[pc:pc+kc, jc:jc+nc] into micro-panels of gemmNR columns, zero-padding like packA.
func (g *gemmOp) packB(ws *gemmScratch, pc, kc, jc, nc int) {
	panels, kcp := (nc+gemmNR-1)/gemmNR, (kc+1)/2
	ws.packB = grow(ws.packB, panels*kcp)
	for jp := 0; jp < panels; jp++ {
		dst := ws.packB[jp*kcp : (jp+1)*kcp]
		if kc%2 == 1 {
			clear(dst[kcp-1][gemmNR:])
		}
		c0 := jc + jp*gemmNR
		cols := min(gemmNR, jc+nc-c0)
		for j := cols; j < gemmNR; j++ {
			for q := range dst {
				dst[q][j], dst[q][gemmNR+j] = 0, 0
			}
		}
		if !g.transB && cols == gemmNR {
			// B is k x n: the columns of one k step are contiguous. This is the im2col matrix of every
			// convolution, so it gets a copy loop without memmove calls.
			ldb := g.ldb
			for q := range dst {
				d := &dst[q]
				p := pc + 2*q
				*(*[gemmNR]float32)(d[:gemmNR]) = [gemmNR]float32(g.b[p*ldb+c0:])
				if 2*q+1 < kc {
					*(*[gemmNR]float32)(d[gemmNR:]) = [gemmNR]float32(g.b[(p+1)*ldb+c0:])
				}
			}
			continue
		}
		if !g.transB {
			for p := 0; p < kc; p++ {
				src := g.b[(pc+p)*g.ldb+c0:]
				copy(dst[p>>1][(p&1)*gemmNR:(p&1)*gemmNR+cols], src[:cols])
			}
			continue
		}
		// B is n x k (the im2col matrix in a weight gradient).
		if cols == gemmNR {
			// Gather from the gemmNR stored rows together so each panel element is written whole.
			ldb := g.ldb
			r0, r1 := g.b[c0*ldb+pc:], g.b[(c0+1)*ldb+pc:]
			r2, r3 := g.b[(c0+2)*ldb+pc:], g.b[(c0+3)*ldb+pc:]
			r0, r1, r2, r3 = r0[:kc], r1[:kc], r2[:kc], r3[:kc]
			p := 1
			for ; p < kc; p += 2 {
				d := &dst[p>>1]
				d[0], d[1], d[2], d[3] = r0[p-1], r1[p-1], r2[p-1], r3[p-1]
				d[4], d[5], d[6], d[7] = r0[p], r1[p], r2[p], r3[p]
			}
			if kc%2 == 1 {
				d := &dst[kcp-1]
				d[0], d[1], d[2], d[3] = r0[kc-1], r1[kc-1], r2[kc-1], r3[kc-1]
			}
			continue
		}
		for j := 0; j < cols; j++ {
			src := g.b[(c0+j)*g.ldb+pc:]
			src = src[:kc]
			for p, v := range src {
				dst[p>>1][(p&1)*gemmNR+j] = v
			}
		}
	}
}

// macro multiplies the packed A block by the packed B panel into C[ic:ic+mc, jc:jc+nc].
func (g *gemmOp) macro(ws *gemmScratch, ic, mc, jc, nc, kc int, add bool) {
	ldc, kcp := g.ldc, (kc+1)/2
	for jr := 0; jr < nc; jr += gemmNR {
		b := ws.packB[(jr/gemmNR)*kcp : (jr/gemmNR+1)*kcp]
		cols := min(gemmNR, nc-jr)
		for ir := 0; ir < mc; ir += gemmMR {
			a := ws.packA[(ir/gemmMR)*kcp : (ir/gemmMR+1)*kcp]
			rows := min(gemmMR, mc-ir)
			off := (ic+ir)*ldc + jc + jr
			if rows == gemmMR && cols == gemmNR {
				gemmKernel(a, b, g.c[off:], ldc, add)
				continue
			}
			// Edge tile: run the same kernel on a full scratch tile so every element of C goes through
			// identical arithmetic.
			t := ws.tile[:]
			if add {
				for i := 0; i < rows; i++ {
					copy(t[i*gemmNR:i*gemmNR+cols], g.c[off+i*ldc:off+i*ldc+cols])
				}
			}
			gemmKernel(a, b, t, gemmNR, add)
			for i := 0; i < rows; i++ {
				copy(g.c[off+i*ldc:off+i*ldc+cols], t[i*gemmNR:i*gemmNR+cols])
			}
		}
	}
}

// gemmKernel computes the gemmMR x gemmNR tile sum_p a[p] (x) b[p] and stores it into c (row stride
// ldc), or adds it when add is set. Each iteration does two k steps with the additions kept in k order;
// that measured fastest: Go schedules all products of an iteration before the loop-carried additions, and
// with two steps the first step's additions issue early.
func gemmKernel(a []aPanel, b []bPanel, c []float32, ldc int, add bool) {
	var c00, c01, c02, c03 float32
	var c10, c11, c12, c13 float32
	b = b[:len(a)]
	for p := range a {
		ap, bp := &a[p], &b[p]
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
	r0 := (*[gemmNR]float32)(c[0:gemmNR])
	r1 := (*[gemmNR]float32)(c[ldc : ldc+gemmNR])
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
	op := gemmOp{transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc}
	workers := len(d.ws)
	if workers == 1 || m*n*k < gemmParallelMin {
		op.block(&d.ws[0].gemm, 0, m, 0, n)
		return
	}
	// Shrink the tiles until there are a few per worker for load balance; the tile shape changes only
	// which worker computes an element, not its value.
	tileM, tileN := gemmMC, gemmNC
	for {
		tiles := ((m + tileM - 1) / tileM) * ((n + tileN - 1) / tileN)
		if tiles >= 4*workers {
			break
		}
		if tileN >= tileM && tileN > 8*gemmNR {
			tileN /= 2
		} else if tileM > 8*gemmMR {
			tileM /= 2
		} else {
			break
		}
	}
	j := &d.jobs.gemm
	*j = gemmJob{d: d, op: op, tileM: tileM, tileN: tileN, tilesN: (n + tileN - 1) / tileN}
	d.pool.run(j, ((m+tileM-1)/tileM)*j.tilesN)
	j.op = gemmOp{} // drop the references to the caller's slices
}
