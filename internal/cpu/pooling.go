package cpu

// Max pooling and global average pooling. A piece of work is a group of whole (n, c) planes: overlapping
// max-pool windows add into the same input gradient only within a plane, in a fixed (row-major) order.

import (
	"math"

	"resnet/internal/backend"
)

type poolKind uint8

const (
	maxPoolForward poolKind = iota
	maxPoolBackward
	avgPoolForward
	avgPoolBackward
	windowAvgForward
	windowAvgBackward
	windowAvgBackwardAdd
)

// poolJob is the state of one pooling call; piece i covers planes split(planes, parts, i).
type poolJob struct {
	kind                poolKind
	planes, parts       int
	h, w, oh, ow        int
	kernel, stride, pad int
	excludePad          bool
	x, y, dy, dx        []float32
}

func (j *poolJob) run(_, i int) {
	lo, hi := split(j.planes, j.parts, i)
	for pl := lo; pl < hi; pl++ {
		switch j.kind {
		case maxPoolForward, maxPoolBackward:
			j.maxPlane(pl)
		case windowAvgForward, windowAvgBackward, windowAvgBackwardAdd:
			j.avgPlane(pl)
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

// poolOperands are the operands of a pooling op; the ones it does not have are left invalid.
type poolOperands struct {
	x, y, dy, dx backend.Tensor
}

// runPool runs a pooling op of kind on the checked geometry g, or returns the error of its checks or views.
func (d *Device) runPool(op string, kind poolKind, g backend.PoolGeometry, checked error, t poolOperands) error {
	v := views{op: op, err: named(checked)}
	j := poolJob{kind: kind, planes: g.Planes(), parts: d.planeParts(g.Planes()), h: g.H, w: g.W, oh: g.OH, ow: g.OW,
		kernel: g.Kernel, stride: g.Stride, pad: g.Pad, excludePad: g.ExcludePad}
	j.x, j.y, j.dy, j.dx = v.optional("x", t.x), v.optional("y", t.y), v.optional("dy", t.dy), v.optional("dx", t.dx)
	if v.err != nil {
		return v.err
	}
	d.jobs.pool = j
	d.pool.run(&d.jobs.pool, j.parts)
	d.jobs.pool = poolJob{}
	return nil
}

// MaxPoolForward implements backend.Device.
func (d *Device) MaxPoolForward(p backend.PoolParams, x, y backend.Tensor) error {
	g, err := backend.CheckMaxPoolForward(p, x, y)
	return d.runPool("MaxPoolForward", maxPoolForward, g, err, poolOperands{x: x, y: y})
}

// MaxPoolBackward implements backend.Device. It overwrites dx.
func (d *Device) MaxPoolBackward(p backend.PoolParams, x, y, dy, dx backend.Tensor) error {
	g, err := backend.CheckMaxPoolBackward(p, x, y, dy, dx)
	return d.runPool("MaxPoolBackward", maxPoolBackward, g, err, poolOperands{x: x, y: y, dy: dy, dx: dx})
}

// GlobalAvgPoolForward implements backend.Device: y (N, C) is the mean of each (H, W) plane of x, summed
// in float64.
func (d *Device) GlobalAvgPoolForward(x, y backend.Tensor) error {
	g, err := backend.CheckGlobalAvgPoolForward(x, y)
	return d.runPool("GlobalAvgPoolForward", avgPoolForward, g, err, poolOperands{x: x, y: y})
}

// GlobalAvgPoolBackward implements backend.Device: every element of plane (n, c) of dx gets dy[n, c]/(H*W).
func (d *Device) GlobalAvgPoolBackward(dy, dx backend.Tensor) error {
	g, err := backend.CheckGlobalAvgPoolBackward(dy, dx)
	return d.runPool("GlobalAvgPoolBackward", avgPoolBackward, g, err, poolOperands{dy: dy, dx: dx})
}

// AvgPoolForward implements backend.Device: each output is the float32 sum of its window, in row-major
// order, divided by kernel*kernel, or by the number of positions inside the input with p.ExcludePad (as
// PyTorch's avg_pool2d computes it).
func (d *Device) AvgPoolForward(p backend.PoolParams, x, y backend.Tensor) error {
	g, err := backend.CheckAvgPoolForward(p, x, y)
	return d.runPool("AvgPoolForward", windowAvgForward, g, err, poolOperands{x: x, y: y})
}

// AvgPoolBackward implements backend.Device: every position of a window gets its output's gradient divided
// as the forward divided it, added in row-major window order.
func (d *Device) AvgPoolBackward(p backend.PoolParams, dy, dx backend.Tensor, accumulate bool) error {
	g, err := backend.CheckAvgPoolBackward(p, dy, dx)
	kind := windowAvgBackward
	if accumulate {
		kind = windowAvgBackwardAdd
	}
	return d.runPool("AvgPoolBackward", kind, g, err, poolOperands{dy: dy, dx: dx})
}

// avgPlane pools one plane with an average window (forward) or spreads its gradient (backward).
func (j *poolJob) avgPlane(pl int) {
	hw, ohw := j.h*j.w, j.oh*j.ow
	forward := j.kind == windowAvgForward
	var x, y, dy, dx []float32
	if forward {
		x, y = j.x[pl*hw:(pl+1)*hw], j.y[pl*ohw:(pl+1)*ohw]
	} else {
		dy, dx = j.dy[pl*ohw:(pl+1)*ohw], j.dx[pl*hw:(pl+1)*hw]
		if j.kind == windowAvgBackward {
			clear(dx)
		}
	}
	for oy := 0; oy < j.oh; oy++ {
		y0 := oy*j.stride - j.pad
		ylo, yhi := max(0, y0), min(j.h, y0+j.kernel)
		for ox := 0; ox < j.ow; ox++ {
			x0 := ox*j.stride - j.pad
			xlo, xhi := max(0, x0), min(j.w, x0+j.kernel)
			div := float32(j.kernel * j.kernel)
			if j.excludePad {
				div = float32((yhi - ylo) * (xhi - xlo))
			}
			if forward {
				var s float32
				for iy := ylo; iy < yhi; iy++ {
					for _, v := range x[iy*j.w+xlo : iy*j.w+xhi] {
						s += v
					}
				}
				y[oy*j.ow+ox] = s / div
				continue
			}
			g := dy[oy*j.ow+ox] / div
			for iy := ylo; iy < yhi; iy++ {
				row := dx[iy*j.w+xlo : iy*j.w+xhi]
				for i := range row {
					row[i] += g
				}
			}
		}
	}
}
