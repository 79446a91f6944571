package cpu

// Fully connected layer: y (N, Out) = x (N, In) * w (Out, In)^T + b, as GEMMs. The GEMM sums over its inner
// dimension in a fixed order, so the weight gradient (a sum over the batch) is deterministic as is.

import "resnet/internal/backend"

// LinearForward implements backend.Device.
func (d *Device) LinearForward(x, w, b, y backend.Tensor) error {
	g, err := backend.CheckLinearForward(x, w, b, y)
	v := views{op: "LinearForward", err: named(err)}
	xv, wv, bv, yv := v.f32("x", x), v.f32("w", w), v.f32("b", b), v.f32("y", y)
	if v.err != nil {
		return v.err
	}
	n, in, out := g.N, g.In, g.Out
	for i := 0; i < n; i++ {
		copy(yv[i*out:(i+1)*out], bv)
	}
	d.sgemmParallel(false, true, n, out, in, 1, xv, in, wv, in, 1, yv, out)
	return nil
}

// LinearBackward implements backend.Device: dx = dy*w (when dx is valid), dw = dy^T*x, db = sum over the
// batch of dy (in float64).
func (d *Device) LinearBackward(x, w, dy, dx, dw, db backend.Tensor) error {
	g, err := backend.CheckLinearBackward(x, w, dy, dx, dw, db)
	v := views{op: "LinearBackward", err: named(err)}
	xv, wv, dyv, dwv, dbv := v.f32("x", x), v.f32("w", w), v.f32("dy", dy), v.f32("dw", dw), v.f32("db", db)
	dxv := v.optional("dx", dx)
	if v.err != nil {
		return v.err
	}
	n, in, out := g.N, g.In, g.Out
	if dxv != nil {
		d.sgemmParallel(false, false, n, in, out, 1, dyv, out, wv, in, 0, dxv, in)
	}
	d.sgemmParallel(true, false, out, in, n, 1, dyv, out, xv, in, 0, dwv, in)
	d.columnSums(dbv, dyv, n, out)
	return nil
}

// columnSums writes to dst (cols) the sums over the n rows of src (n, cols), in row order in float64.
func (d *Device) columnSums(dst, src []float32, n, cols int) {
	d.chan64 = grow(d.chan64, cols)
	sum := d.chan64
	clear(sum)
	for i := 0; i < n; i++ {
		row := src[i*cols : (i+1)*cols]
		row = row[:len(sum)]
		for o, e := range row {
			sum[o] += float64(e)
		}
	}
	for o, s := range sum {
		dst[o] = float32(s)
	}
}
