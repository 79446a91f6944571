//go:build cuda

package cuda

// Launchers of kernels/pooling.cu: max pooling (PyTorch semantics) and global average pooling.

import (
	"fmt"

	"resnet/internal/backend"
)

// poolGeom is the geometry of one max pool: planes of h x w pooled to oh x ow.
type poolGeom struct {
	planes, h, w, oh, ow int
	kernel, stride, pad  int
}

func (g poolGeom) inTotal() int64  { return int64(g.planes) * int64(g.h) * int64(g.w) }
func (g poolGeom) outTotal() int64 { return int64(g.planes) * int64(g.oh) * int64(g.ow) }

// maxPoolGeometry validates x (N, C, H, W) and y (N, C, OH, OW) of a max pool.
func (d *Device) maxPoolGeometry(op string, p backend.PoolParams, x, y backend.Tensor) (g poolGeom, xp, yp uint64, err error) {
	var n, c int
	if xp, n, c, g.h, g.w, err = d.dims4(op, "x", x); err != nil {
		return g, 0, 0, err
	}
	if p.Kernel < 1 || p.Stride < 1 || p.Pad < 0 || p.Pad > p.Kernel/2 {
		return g, 0, 0, fmt.Errorf("cuda: %s: kernel %d, stride %d, padding %d: want kernel >= 1, stride >= 1 and 0 <= padding <= kernel/2",
			op, p.Kernel, p.Stride, p.Pad)
	}
	if g.h+2*p.Pad < p.Kernel || g.w+2*p.Pad < p.Kernel {
		return g, 0, 0, fmt.Errorf("cuda: %s: window %d does not fit the %dx%d input padded by %d", op, p.Kernel, g.h, g.w, p.Pad)
	}
	g.oh, g.ow = backend.OutSize(g.h, p.Kernel, p.Stride, p.Pad), backend.OutSize(g.w, p.Kernel, p.Stride, p.Pad)
	if yp, err = d.shaped(op, "y", y, n, c, g.oh, g.ow); err != nil {
		return g, 0, 0, err
	}
	g.planes, g.kernel, g.stride, g.pad = n*c, p.Kernel, p.Stride, p.Pad
	return g, xp, yp, nil
}

// MaxPoolForward implements backend.Device.
func (d *Device) MaxPoolForward(p backend.PoolParams, x, y backend.Tensor) error {
	const op = "MaxPoolForward"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	g, xp, yp, err := d.maxPoolGeometry(op, p, x, y)
	if err != nil || g.outTotal() == 0 {
		return err
	}
	return d.launch(op, kMaxPoolForward, d.blocksFor(g.outTotal()), 1).p(xp).p(yp).i(g.planes).i(g.h).i(g.w).
		i(g.oh).i(g.ow).i(g.kernel).i(g.stride).i(g.pad).run()
}

// MaxPoolBackward implements backend.Device. It overwrites dx; each input element gathers the gradients
// of the windows whose first maximum it is, so nothing from the forward is stored.
func (d *Device) MaxPoolBackward(p backend.PoolParams, x, y, dy, dx backend.Tensor) error {
	const op = "MaxPoolBackward"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	g, xp, _, err := d.maxPoolGeometry(op, p, x, y)
	if err != nil {
		return err
	}
	dyp, err := d.shaped(op, "dy", dy, y.Shape...)
	if err != nil {
		return err
	}
	dxp, err := d.shaped(op, "dx", dx, x.Shape...)
	if err != nil || g.inTotal() == 0 {
		return err
	}
	return d.launch(op, kMaxPoolBackward, d.blocksFor(g.inTotal()), 1).p(xp).p(dyp).p(dxp).i(g.planes).i(g.h).
		i(g.w).i(g.oh).i(g.ow).i(g.kernel).i(g.stride).i(g.pad).run()
}

// pooledVector checks that y is (N, C) or (N, C, 1, 1) and returns its address.
func (d *Device) pooledVector(op, name string, y backend.Tensor, n, c int) (uint64, error) {
	if len(y.Shape) == 4 {
		return d.shaped(op, name, y, n, c, 1, 1)
	}
	return d.shaped(op, name, y, n, c)
}

// GlobalAvgPoolForward implements backend.Device: y (N, C) is the mean of each (H, W) plane of x, summed
// in double.
func (d *Device) GlobalAvgPoolForward(x, y backend.Tensor) error {
	const op = "GlobalAvgPoolForward"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	xp, n, c, h, w, err := d.dims4(op, "x", x)
	if err != nil {
		return err
	}
	yp, err := d.pooledVector(op, "y", y, n, c)
	if err != nil {
		return err
	}
	if h*w == 0 {
		return fmt.Errorf("cuda: %s: x %v has empty planes", op, x.Shape)
	}
	planes := n * c
	if planes == 0 {
		return nil
	}
	const planesPerBlock = blockSize / 32
	return d.launch(op, kAvgPoolForward, (planes+planesPerBlock-1)/planesPerBlock, 1).p(xp).p(yp).i(planes).i(h * w).run()
}

// GlobalAvgPoolBackward implements backend.Device: every element of plane (n, c) of dx gets dy[n, c]/(H*W).
func (d *Device) GlobalAvgPoolBackward(dy, dx backend.Tensor) error {
	const op = "GlobalAvgPoolBackward"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	dxp, n, c, h, w, err := d.dims4(op, "dx", dx)
	if err != nil {
		return err
	}
	dyp, err := d.pooledVector(op, "dy", dy, n, c)
	if err != nil {
		return err
	}
	total := int64(n) * int64(c) * int64(h) * int64(w)
	if total == 0 {
		return nil
	}
	return d.launch(op, kAvgPoolBackward, d.blocksFor(total), 1).p(dyp).p(dxp).i(n * c).i(h * w).run()
}
