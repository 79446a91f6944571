//go:build cuda

package cuda

// The fully connected layer: GEMMs on cuBLAS, bias add and bias gradient on kernels/linear.cu.
//
// cuBLAS is column-major; a row-major (r, c) matrix is the column-major (c, r) matrix with the same
// memory and leading dimension c. So with every matrix read as its transpose:
//
//	y (N, Out)  = x (N, In) * w^T      is  y^T (Out, N) = op_T(w^T) (Out, In) * x^T (In, N)
//	dx (N, In)  = dy (N, Out) * w      is  dx^T (In, N) = w^T (In, Out) * dy^T (Out, N)
//	dw (Out, In) = dy^T (Out, N) * x   is  dw^T (In, Out) = x^T (In, N) * op_T(dy^T) (N, Out)

import "resnet/internal/backend"

// gemm queues the column-major C (m, n) = op(A) * op(B) (alpha 1, beta 0) on cuBLAS, or zeroes C when the
// inner dimension k is 0.
func (d *Device) gemm(op string, ta, tb bool, m, n, k int, a uint64, lda int, b uint64, ldb int, c uint64, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		d.enqueue(&cmd{kind: cmdMemset, op: op, dst: c, n: 4 * int64(m) * int64(n)})
		return
	}
	d.countLib(libSgemm)
	d.enqueue(&cmd{kind: cmdGemm, op: op, gemm: gemmArgs{
		ta: int32(b2i(ta)), tb: int32(b2i(tb)), m: int32(m), n: int32(n), k: int32(k),
		a: a, lda: int32(lda), b: b, ldb: int32(ldb), c: c, ldc: int32(ldc),
	}})
}

// LinearForward implements backend.Device.
func (d *Device) LinearForward(x, w, b, y backend.Tensor) error {
	const op = "LinearForward"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	g, err := backend.CheckLinearForward(x, w, b, y)
	a := addrs{d: d, op: op, err: named(err)}
	xp, wp, bp, yp := a.of("x", x), a.of("w", w), a.of("b", b), a.of("y", y)
	n, in, out := g.N, g.In, g.Out
	if a.err != nil || n == 0 || out == 0 {
		return a.err
	}
	d.gemm(op, true, false, out, n, in, wp, in, xp, in, yp, out)
	return d.launch(op, kLinearBiasAdd, d.blocksFor(int64(n)*int64(out)), 1).p(yp).p(bp).i(n).i(out).run()
}

// LinearBackward implements backend.Device: dx = dy*w (when dx is valid), dw = dy^T*x, db = the column
// sums of dy (in double, in row order).
func (d *Device) LinearBackward(x, w, dy, dx, dw, db backend.Tensor) error {
	const op = "LinearBackward"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	g, err := backend.CheckLinearBackward(x, w, dy, dx, dw, db)
	a := addrs{d: d, op: op, err: named(err)}
	xp, wp, dyp, dwp, dbp := a.of("x", x), a.of("w", w), a.of("dy", dy), a.of("dw", dw), a.of("db", db)
	var dxp uint64
	if dx.Valid() {
		dxp = a.of("dx", dx)
	}
	if a.err != nil {
		return a.err
	}
	n, in, out := g.N, g.In, g.Out
	if dx.Valid() {
		d.gemm(op, false, false, in, n, out, wp, in, dyp, out, dxp, in)
	}
	d.gemm(op, false, true, in, out, n, xp, in, dyp, out, dwp, in)
	if out == 0 {
		return nil
	}
	return d.launch(op, kLinearBiasGrad, blocksOf(out), 1).p(dyp).p(dbp).i(n).i(out).run()
}
