package cpu

// Max pooling and global average pooling. A piece of work is a group of whole (n, c) planes: overlapping
// max-pool windows add into the same input gradient only within a plane, in a fixed (row-major) order.

import (
	"fmt"
	"math"

	"resnet/internal/backend"
)

type poolKind uint8

const (
	maxPoolForward poolKind = iota
	maxPoolBackward
	avgPoolForward
	avgPoolBackward
)

// poolJob is the state of one pooling call; piece i covers planes split(planes, parts, i).
type poolJob struct {
	kind                poolKind
	planes, parts       int
	h, w, oh, ow        int
	kernel, stride, pad int
	x, y, dy, dx        []float32
}

func (j *poolJob) run(_, i int) {
	lo, hi := split(j.planes, j.parts, i)
	for pl := lo; pl < hi; pl++ {
		switch j.kind {
		case maxPoolForward, maxPoolBackward:
			j.maxPlane(pl)
		case avgPoolForward:
			x := j.x[pl*j.h*j.w : (pl+1)*j.h*j.w]
			var s float64
			for _, v := range x {
				s += float64(v)
			}
			j.y[pl] = float32(s / float64(len(x)))
		case avgPoolBackward:
			dx := j.dx[pl*j.h*j.w : (pl+1)*j.h*j.w]
			g := j.dy[pl] / float32(len(dx))
			for i := range dx {
				dx[i] = g
			}
		}
	}
}

// maxPlane pools one plane. Each window's argmax is the first maximum in row-major window order (a NaN
// wins, as in PyTorch); the forward writes it, the backward adds the output gradient there.
func (j *poolJob) maxPlane(pl int) {
	hw, ohw := j.h*j.w, j.oh*j.ow
	x := j.x[pl*hw : (pl+1)*hw]
	backward := j.kind == maxPoolBackward
	var y, dy, dx []float32
	if backward {
		dy = j.dy[pl*ohw : (pl+1)*ohw]
		dx = j.dx[pl*hw : (pl+1)*hw]
		clear(dx)
	} else {
		y = j.y[pl*ohw : (pl+1)*ohw]
	}
	for oy := 0; oy < j.oh; oy++ {
		y0 := oy*j.stride - j.pad
		ylo, yhi := max(0, y0), min(j.h, y0+j.kernel)
		for ox := 0; ox < j.ow; ox++ {
			x0 := ox*j.stride - j.pad
			xlo, xhi := max(0, x0), min(j.w, x0+j.kernel)
			best := float32(math.Inf(-1))
			arg := ylo*j.w + xlo
			for iy := ylo; iy < yhi; iy++ {
				row := x[iy*j.w+xlo : iy*j.w+xhi]
				for ix, v := range row {
					if v > best || v != v {
						best, arg = v, iy*j.w+xlo+ix
					}
				}
			}
			if backward {
				dx[arg] += dy[oy*j.ow+ox]
			} else {
				y[oy*j.ow+ox] = best
			}
		}
	}
}

// planeParts is how many pieces a per-plane op is cut into: a few per worker for balance. Pieces are
// independent, so the count does not affect results.
func (d *Device) planeParts(planes int) int { return min(planes, 4*len(d.ws)) }

// maxPoolGeometry validates x (N, C, H, W) and y (N, C, OH, OW) of a max pool.
func maxPoolGeometry(op string, p backend.PoolParams, x, y backend.Tensor) (j poolJob, err error) {
	var n, c int
	if j.x, n, c, j.h, j.w, err = dims4(op, "x", x); err != nil {
		return j, err
	}
	if p.Kernel < 1 || p.Stride < 1 || p.Pad < 0 || p.Pad > p.Kernel/2 {
		return j, fmt.Errorf("cpu: %s: kernel %d, stride %d, padding %d: want kernel >= 1, stride >= 1 and 0 <= padding <= kernel/2",
			op, p.Kernel, p.Stride, p.Pad)
	}
	if j.h+2*p.Pad < p.Kernel || j.w+2*p.Pad < p.Kernel {
		return j, fmt.Errorf("cpu: %s: window %d does not fit the %dx%d input padded by %d", op, p.Kernel, j.h, j.w, p.Pad)
	}
	j.oh, j.ow = backend.OutSize(j.h, p.Kernel, p.Stride, p.Pad), backend.OutSize(j.w, p.Kernel, p.Stride, p.Pad)
	if j.y, err = shaped(op, "y", y, n, c, j.oh, j.ow); err != nil {
		return j, err
	}
	j.planes, j.kernel, j.stride, j.pad = n*c, p.Kernel, p.Stride, p.Pad
	return j, nil
}

// MaxPoolForward implements backend.Device.
func (d *Device) MaxPoolForward(p backend.PoolParams, x, y backend.Tensor) error {
	j, err := maxPoolGeometry("MaxPoolForward", p, x, y)
	if err != nil {
		return err
	}
	j.kind, j.parts = maxPoolForward, d.planeParts(j.planes)
	d.jobs.pool = j
	d.pool.run(&d.jobs.pool, j.parts)
	d.jobs.pool = poolJob{}
	return nil
}

// MaxPoolBackward implements backend.Device. It overwrites dx.
func (d *Device) MaxPoolBackward(p backend.PoolParams, x, y, dy, dx backend.Tensor) error {
	const op = "MaxPoolBackward"
	j, err := maxPoolGeometry(op, p, x, y)
	if err != nil {
		return err
	}
	if j.dy, err = shaped(op, "dy", dy, y.Shape...); err != nil {
		return err
	}
	if j.dx, err = shaped(op, "dx", dx, x.Shape...); err != nil {
		return err
	}
	j.kind, j.parts = maxPoolBackward, d.planeParts(j.planes)
	d.jobs.pool = j
	d.pool.run(&d.jobs.pool, j.parts)
	d.jobs.pool = poolJob{}
	return nil
}

// pooledVector checks that y is (N, C) or (N, C, 1, 1) and returns its elements.
func pooledVector(op, name string, y backend.Tensor, n, c int) ([]float32, error) {
	if len(y.Shape) == 4 {
		return shaped(op, name, y, n, c, 1, 1)
	}
	return shaped(op, name, y, n, c)
}

// GlobalAvgPoolForward implements backend.Device: y (N, C) is the mean of each (H, W) plane of x, summed
// in float64.
func (d *Device) GlobalAvgPoolForward(x, y backend.Tensor) error {
	const op = "GlobalAvgPoolForward"
	var j poolJob
	var err error
	var n, c int
	if j.x, n, c, j.h, j.w, err = dims4(op, "x", x); err != nil {
		return err
	}
	if j.y, err = pooledVector(op, "y", y, n, c); err != nil {
		return err
	}
	if j.h*j.w == 0 {
		return fmt.Errorf("cpu: %s: x %v has empty planes", op, x.Shape)
	}
	j.kind, j.planes = avgPoolForward, n*c
	j.parts = d.planeParts(j.planes)
	d.jobs.pool = j
	d.pool.run(&d.jobs.pool, j.parts)
	d.jobs.pool = poolJob{}
	return nil
}

// GlobalAvgPoolBackward implements backend.Device: every element of plane (n, c) of dx gets dy[n, c]/(H*W).
func (d *Device) GlobalAvgPoolBackward(dy, dx backend.Tensor) error {
	const op = "GlobalAvgPoolBackward"
	var j poolJob
	var err error
	var n, c int
	if j.dx, n, c, j.h, j.w, err = dims4(op, "dx", dx); err != nil {
		return err
	}
	if j.dy, err = pooledVector(op, "dy", dy, n, c); err != nil {
		return err
	}
	j.kind, j.planes = avgPoolBackward, n*c
	j.parts = d.planeParts(j.planes)
	d.jobs.pool = j
	d.pool.run(&d.jobs.pool, j.parts)
	d.jobs.pool = poolJob{}
	return nil
}
