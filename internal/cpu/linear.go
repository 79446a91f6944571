package cpu

// Fully connected layer: y (N, Out) = x (N, In) * w (Out, In)^T + b, as GEMMs. The GEMM sums over its inner
// dimension in a fixed order, so the weight gradient (a sum over the batch) is deterministic as is.

import (
	"fmt"

	"resnet/internal/backend"
)

// linearGeometry validates x (N, In...) against w (Out, In) and returns N, In, Out. x may keep trailing
// spatial dimensions of size 1 (N, C, 1, 1): only the element count per sample must equal In.
func linearGeometry(op string, x, w backend.Tensor) (xv, wv []float32, n, in, out int, err error) {
	if len(w.Shape) != 2 {
		return nil, nil, 0, 0, 0, fmt.Errorf("cpu: %s: w has shape %v, want (Out, In)", op, w.Shape)
	}
	out, in = w.Shape[0], w.Shape[1]
	if len(x.Shape) < 2 || x.Shape[1:].Numel() != in {
		return nil, nil, 0, 0, 0, fmt.Errorf("cpu: %s: x has shape %v, want (N, %d) to match w %v", op, x.Shape, in, w.Shape)
	}
	n = x.Shape[0]
	if xv, err = f32View(op, "x", x); err != nil {
		return nil, nil, 0, 0, 0, err
	}
	if wv, err = f32View(op, "w", w); err != nil {
		return nil, nil, 0, 0, 0, err
	}
	return xv, wv, n, in, out, nil
}

// LinearForward implements backend.Device.
func (d *Device) LinearForward(x, w, b, y backend.Tensor) error {
	const op = "LinearForward"
	xv, wv, n, in, out, err := linearGeometry(op, x, w)
	if err != nil {
		return err
	}
	bv, err := shaped(op, "b", b, out)
	if err != nil {
		return err
	}
	yv, err := shaped(op, "y", y, n, out)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		copy(yv[i*out:(i+1)*out], bv)
	}
	d.sgemmParallel(false, true, n, out, in, 1, xv, in, wv, in, 1, yv, out)
	return nil
}

// LinearBackward implements backend.Device: dx = dy*w (when dx is valid), dw = dy^T*x, db = sum over the
// batch of dy (in float64).
func (d *Device) LinearBackward(x, w, dy, dx, dw, db backend.Tensor) error {
	const op = "LinearBackward"
	xv, wv, n, in, out, err := linearGeometry(op, x, w)
	if err != nil {
		return err
	}
	dyv, err := shaped(op, "dy", dy, n, out)
	if err != nil {
		return err
	}
	var dxv []float32
	if dx.Valid() {
		if dxv, err = shaped(op, "dx", dx, x.Shape...); err != nil {
			return err
		}
	}
	dwv, err := shaped(op, "dw", dw, out, in)
	if err != nil {
		return err
	}
	dbv, err := shaped(op, "db", db, out)
	if err != nil {
		return err
	}
	if dxv != nil {
		d.sgemmParallel(false, false, n, in, out, 1, dyv, out, wv, in, 0, dxv, in)
	}
	d.sgemmParallel(true, false, out, in, n, 1, dyv, out, xv, in, 0, dwv, in)
	d.chan64 = grow(d.chan64, out)
	sum := d.chan64
	clear(sum)
	for i := 0; i < n; i++ {
		row := dyv[i*out : (i+1)*out]
		row = row[:len(sum)]
		for o, v := range row {
			sum[o] += float64(v)
		}
	}
	for o, s := range sum {
		dbv[o] = float32(s)
	}
	return nil
}
