package cpu

// Convolution as GEMM. For one image, im2col lays the input out as a (Cin*KH*KW, OH*OW) matrix whose
// column j holds the input patch under output position j, so
//
//	forward          y[n]  (Cout, P)  = w (Cout, K) * col(x[n]) (K, P)
//	backward data    dcol  (K, P)     = w^T (K, Cout) * dy[n] (Cout, P), then col2im adds it into dx[n]
//	backward filter  dw    (Cout, K) += dy[n] (Cout, P) * col(x[n])^T (P, K)
//
// with K = Cin*KH*KW and P = OH*OW. A 1x1 stride-1 unpadded convolution needs no im2col: x[n] already is
// that (Cin, H*W) matrix.
//
// Work is split by image when there are at least as many images as workers (each worker runs whole
// single-threaded GEMMs on its own scratch), otherwise images run one after another, each GEMM spread over
// all workers. Both give the same bits (see gemm.go). The weight gradient sums over the batch: images are
// grouped into a fixed number of chunks, each chunk accumulates into its own partial buffer, and the
// partials are added in chunk order.

import (
	"fmt"

	"resnet/internal/backend"
)

// convGeom is the geometry of one convolution.
type convGeom struct {
	n, cin, h, w    int
	cout, kh, kw    int
	stride, pad     int
	oh, ow          int
	inSize, outSize int // elements of one image of x and of y
	kdim, positions int // K = Cin*KH*KW and P = OH*OW
	pointwise       bool
}

// convGeometry validates a convolution's operands: x-like (N, Cin, H, W), w-like (Cout, Cin, KH, KW) and
// y-like (N, Cout, OH, OW) tensors, whatever role (input or gradient) each plays in op.
func convGeometry(op string, p backend.ConvParams, xName string, x backend.Tensor, wName string, w backend.Tensor,
	yName string, y backend.Tensor) (g convGeom, xv, wv, yv []float32, err error) {
	if p.Stride < 1 || p.Pad < 0 {
		return g, nil, nil, nil, fmt.Errorf("cpu: %s: stride must be >= 1 and padding >= 0 (got stride %d, padding %d)", op, p.Stride, p.Pad)
	}
	if xv, g.n, g.cin, g.h, g.w, err = dims4(op, xName, x); err != nil {
		return g, nil, nil, nil, err
	}
	if len(w.Shape) != 4 {
		return g, nil, nil, nil, fmt.Errorf("cpu: %s: %s has shape %v, want 4-D (Cout, Cin, KH, KW)", op, wName, w.Shape)
	}
	var wcin int
	if wv, g.cout, wcin, g.kh, g.kw, err = dims4(op, wName, w); err != nil {
		return g, nil, nil, nil, err
	}
	if wcin != g.cin {
		return g, nil, nil, nil, fmt.Errorf("cpu: %s: %s %v has %d input channels but %s %v has %d channels",
			op, wName, w.Shape, wcin, xName, x.Shape, g.cin)
	}
	if g.kh < 1 || g.kw < 1 || g.h+2*p.Pad < g.kh || g.w+2*p.Pad < g.kw {
		return g, nil, nil, nil, fmt.Errorf("cpu: %s: kernel %dx%d does not fit the %dx%d input padded by %d",
			op, g.kh, g.kw, g.h, g.w, p.Pad)
	}
	g.stride, g.pad = p.Stride, p.Pad
	g.oh, g.ow = backend.OutSize(g.h, g.kh, g.stride, g.pad), backend.OutSize(g.w, g.kw, g.stride, g.pad)
	if yv, err = shaped(op, yName, y, g.n, g.cout, g.oh, g.ow); err != nil {
		return g, nil, nil, nil, fmt.Errorf("%w (from %s %v, %s %v, stride %d, padding %d)", err, xName, x.Shape, wName, w.Shape, p.Stride, p.Pad)
	}
	g.inSize, g.outSize = g.cin*g.h*g.w, g.cout*g.oh*g.ow
	g.kdim, g.positions = g.cin*g.kh*g.kw, g.oh*g.ow
	g.pointwise = g.kh == 1 && g.kw == 1 && g.stride == 1 && g.pad == 0
	return g, xv, wv, yv, nil
}

// validRange returns the output positions [lo, hi) along one axis whose input coordinate
// o*stride - pad + k lies inside [0, in).
func validRange(out, in, stride, pad, k int) (lo, hi int) {
	lo = max(0, ceilDiv(pad-k, stride))
	hi = min(out, floorDiv(in-1+pad-k, stride)+1)
	return lo, max(lo, hi)
}

// im2col writes the (K, P) patch matrix of one image x (C, H, W) into col.
func im2col(col, x []float32, g *convGeom) {
	hw, p := g.h*g.w, g.positions
	row := 0
	for c := 0; c < g.cin; c++ {
		xc := x[c*hw : (c+1)*hw]
		for i := 0; i < g.kh; i++ {
			for j := 0; j < g.kw; j++ {
				dst := col[row*p : (row+1)*p]
				row++
				lo, hi := validRange(g.ow, g.w, g.stride, g.pad, j)
				for oy := 0; oy < g.oh; oy++ {
					out := dst[oy*g.ow : (oy+1)*g.ow]
					iy := oy*g.stride - g.pad + i
					if iy < 0 || iy >= g.h {
						clear(out)
						continue
					}
					clear(out[:lo])
					clear(out[hi:])
					src := xc[iy*g.w : (iy+1)*g.w]
					base := j - g.pad
					if g.stride == 1 {
						copy(out[lo:hi], src[lo+base:hi+base])
						continue
					}
					for o := lo; o < hi; o++ {
						out[o] = src[o*g.stride+base]
					}
				}
			}
		}
	}
}

// col2im adds the (K, P) patch-gradient matrix col into one image's input gradient dx (C, H, W). Each
// element receives its contributions in a fixed order (row-major over (c, i, j, oy, ox)).
func col2im(dx, col []float32, g *convGeom) {
	hw, p := g.h*g.w, g.positions
	row := 0
	for c := 0; c < g.cin; c++ {
		dc := dx[c*hw : (c+1)*hw]
		for i := 0; i < g.kh; i++ {
			for j := 0; j < g.kw; j++ {
				src := col[row*p : (row+1)*p]
				row++
				lo, hi := validRange(g.ow, g.w, g.stride, g.pad, j)
				if lo >= hi {
					continue
				}
				for oy := 0; oy < g.oh; oy++ {
					iy := oy*g.stride - g.pad + i
					if iy < 0 || iy >= g.h {
						continue
					}
					in := src[oy*g.ow : (oy+1)*g.ow]
					dst := dc[iy*g.w : (iy+1)*g.w]
					base := j - g.pad
					if g.stride == 1 {
						d := dst[lo+base : hi+base]
						s := in[lo:hi]
						s = s[:len(d)]
						for o, v := range s {
							d[o] += v
						}
						continue
					}
					for o := lo; o < hi; o++ {
						dst[o*g.stride+base] += in[o]
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

// convJob is the state of one convolution call. A piece is an image (forward, backward data), a batch
// chunk (backward filter) or a range of weight-gradient elements (reduction of the chunk partials).
type convJob struct {
	d          *Device
	kind       convKind
	g          convGeom
	x, w, y    []float32 // y is dy in the backward passes, x is dx in backward data
	dw         []float32
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

// gemm runs on the worker's scratch, or over the whole pool when the job runs images one at a time.
func (j *convJob) gemm(worker int, parallel, transA, transB bool, m, n, k int, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int) {
	if parallel {
		j.d.sgemmParallel(transA, transB, m, n, k, 1, a, lda, b, ldb, beta, c, ldc)
		return
	}
	sgemm(&j.d.ws[worker].gemm, transA, transB, m, n, k, 1, a, lda, b, ldb, beta, c, ldc)
}

func (j *convJob) col(worker int) []float32 {
	ws := j.d.ws[worker]
	ws.col = grow(ws.col, j.g.kdim*j.g.positions)
	return ws.col
}

func (j *convJob) forward(worker, n int, parallel bool) {
	g := &j.g
	xn := j.x[n*g.inSize : (n+1)*g.inSize]
	yn := j.y[n*g.outSize : (n+1)*g.outSize]
	if g.pointwise {
		j.gemm(worker, parallel, false, false, g.cout, g.positions, g.cin, j.w, g.cin, xn, g.positions, 0, yn, g.positions)
		return
	}
	col := j.col(worker)
	im2col(col, xn, g)
	j.gemm(worker, parallel, false, false, g.cout, g.positions, g.kdim, j.w, g.kdim, col, g.positions, 0, yn, g.positions)
}

func (j *convJob) backwardData(worker, n int, parallel bool) {
	g := &j.g
	dxn := j.x[n*g.inSize : (n+1)*g.inSize]
	dyn := j.y[n*g.outSize : (n+1)*g.outSize]
	if g.pointwise {
		var beta float32
		if j.accumulate {
			beta = 1
		}
		j.gemm(worker, parallel, true, false, g.cin, g.positions, g.cout, j.w, g.cin, dyn, g.positions, beta, dxn, g.positions)
		return
	}
	col := j.col(worker)
	j.gemm(worker, parallel, true, false, g.kdim, g.positions, g.cout, j.w, g.kdim, dyn, g.positions, 0, col, g.positions)
	if !j.accumulate {
		clear(dxn)
	}
	col2im(dxn, col, g)
}

// backwardFilter accumulates the weight gradient of batch chunk c into its partial buffer (or straight
// into dw when there is one chunk).
func (j *convJob) backwardFilter(worker, c int, parallel bool) {
	g := &j.g
	size := g.cout * g.kdim
	dst := j.dw
	if j.chunks > 1 {
		dst = j.d.partial[c*size : (c+1)*size]
	}
	lo, hi := split(g.n, j.chunks, c)
	for n := lo; n < hi; n++ {
		var beta float32
		if n > lo {
			beta = 1
		}
		xn := j.x[n*g.inSize : (n+1)*g.inSize]
		dyn := j.y[n*g.outSize : (n+1)*g.outSize]
		if g.pointwise {
			j.gemm(worker, parallel, false, true, g.cout, g.cin, g.positions, dyn, g.positions, xn, g.positions, beta, dst, g.cin)
			continue
		}
		col := j.col(worker)
		im2col(col, xn, g)
		j.gemm(worker, parallel, false, true, g.cout, g.kdim, g.positions, dyn, g.positions, col, g.positions, beta, dst, g.kdim)
	}
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

// runImages runs a per-image pass: by image when every worker can get one, else image by image with
// parallel GEMMs.
func (d *Device) runImages(j *convJob, pass func(j *convJob, worker, n int, parallel bool)) {
	if j.g.n >= len(d.ws) {
		d.pool.run(j, j.g.n)
		return
	}
	for n := 0; n < j.g.n; n++ {
		pass(j, 0, n, true)
	}
}

// ConvForward implements backend.Device.
func (d *Device) ConvForward(p backend.ConvParams, x, w, y backend.Tensor) error {
	g, xv, wv, yv, err := convGeometry("ConvForward", p, "x", x, "w", w, "y", y)
	if err != nil {
		return err
	}
	j := &d.jobs.conv
	*j = convJob{d: d, kind: convForward, g: g, x: xv, w: wv, y: yv}
	d.runImages(j, (*convJob).forward)
	*j = convJob{}
	return nil
}

// ConvBackwardData implements backend.Device.
func (d *Device) ConvBackwardData(p backend.ConvParams, dy, w, dx backend.Tensor, accumulate bool) error {
	g, dxv, wv, dyv, err := convGeometry("ConvBackwardData", p, "dx", dx, "w", w, "dy", dy)
	if err != nil {
		return err
	}
	j := &d.jobs.conv
	*j = convJob{d: d, kind: convBackwardData, g: g, x: dxv, w: wv, y: dyv, accumulate: accumulate}
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
	g, xv, dwv, dyv, err := convGeometry("ConvBackwardFilter", p, "x", x, "dw", dw, "dy", dy)
	if err != nil {
		return err
	}
	if g.n == 0 {
		clear(dwv)
		return nil
	}
	size := g.cout * g.kdim
	j := &d.jobs.conv
	*j = convJob{d: d, kind: convBackwardFilter, g: g, x: xv, y: dyv, dw: dwv, chunks: filterChunks(g.n, size)}
	if j.chunks > 1 {
		d.partial = grow(d.partial, j.chunks*size)
	}
	if j.chunks >= len(d.ws) {
		d.pool.run(j, j.chunks)
	} else {
		for c := 0; c < j.chunks; c++ {
			j.backwardFilter(0, c, true)
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
