//go:build cuda

package cuda

// Convolutions on cuDNN (legacy descriptor API, NCHW float32, cross-correlation). Per geometry the tensor
// and filter descriptors are made once; per direction (and operand alignment) the algorithm is measured
// once with cudnnFind*AlgorithmEx and kept, so a training step creates nothing. The chosen algorithms are
// deterministic whenever cuDNN offers a deterministic one that fits the workspace cap, and never use TF32
// unless RESNET_CUDA_TF32=1.

import (
	"fmt"

	"resnet/internal/backend"
)

// convGeom is the geometry of one convolution: x (n, cin, h, w), w (cout, cin, kh, kw),
// y (n, cout, oh, ow). It is the key of the plan cache.
type convGeom struct {
	n, cin, h, w int
	cout, kh, kw int
	stride, pad  int
	oh, ow       int
}

func (g convGeom) String() string {
	return fmt.Sprintf("x %v, w %v, stride %d, padding %d", []int{g.n, g.cin, g.h, g.w}, []int{g.cout, g.cin, g.kh, g.kw}, g.stride, g.pad)
}

func (g convGeom) xTotal() int64 { return int64(g.n) * int64(g.cin) * int64(g.h) * int64(g.w) }
func (g convGeom) yTotal() int64 { return int64(g.n) * int64(g.cout) * int64(g.oh) * int64(g.ow) }
func (g convGeom) wTotal() int64 { return int64(g.cout) * int64(g.cin) * int64(g.kh) * int64(g.kw) }

// convGeometry validates a convolution's operands: x-like (N, Cin, H, W), w-like (Cout, Cin, KH, KW) and
// y-like (N, Cout, OH, OW) tensors, whatever role (input or gradient) each plays in op.
func (d *Device) convGeometry(op string, p backend.ConvParams, xName string, x backend.Tensor, wName string, w backend.Tensor,
	yName string, y backend.Tensor) (g convGeom, xp, wp, yp uint64, err error) {
	if p.Stride < 1 || p.Pad < 0 {
		return g, 0, 0, 0, fmt.Errorf("cuda: %s: stride must be >= 1 and padding >= 0 (got stride %d, padding %d)", op, p.Stride, p.Pad)
	}
	if xp, g.n, g.cin, g.h, g.w, err = d.dims4(op, xName, x); err != nil {
		return g, 0, 0, 0, err
	}
	if len(w.Shape) != 4 {
		return g, 0, 0, 0, fmt.Errorf("cuda: %s: %s has shape %v, want 4-D (Cout, Cin, KH, KW)", op, wName, w.Shape)
	}
	var wcin int
	if wp, g.cout, wcin, g.kh, g.kw, err = d.dims4(op, wName, w); err != nil {
		return g, 0, 0, 0, err
	}
	if wcin != g.cin {
		return g, 0, 0, 0, fmt.Errorf("cuda: %s: %s %v has %d input channels but %s %v has %d channels",
			op, wName, w.Shape, wcin, xName, x.Shape, g.cin)
	}
	if g.kh < 1 || g.kw < 1 || g.h+2*p.Pad < g.kh || g.w+2*p.Pad < g.kw {
		return g, 0, 0, 0, fmt.Errorf("cuda: %s: kernel %dx%d does not fit the %dx%d input padded by %d",
			op, g.kh, g.kw, g.h, g.w, p.Pad)
	}
	g.stride, g.pad = p.Stride, p.Pad
	g.oh, g.ow = backend.OutSize(g.h, g.kh, g.stride, g.pad), backend.OutSize(g.w, g.kw, g.stride, g.pad)
	if yp, err = d.shaped(op, yName, y, g.n, g.cout, g.oh, g.ow); err != nil {
		return g, 0, 0, 0, fmt.Errorf("%w (from %s %v, %s %v, stride %d, padding %d)", err, xName, x.Shape, wName, w.Shape, p.Stride, p.Pad)
	}
	return g, xp, wp, yp, nil
}

// ConvForward implements backend.Device.
func (d *Device) ConvForward(p backend.ConvParams, x, w, y backend.Tensor) error {
	const op = "ConvForward"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	g, xp, wp, yp, err := d.convGeometry(op, p, "x", x, "w", w, "y", y)
	if err != nil || g.yTotal() == 0 {
		return err
	}
	if g.cin == 0 {
		d.enqueue(&cmd{kind: cmdMemset, op: op, dst: yp, n: g.yTotal()})
		return nil
	}
	return d.conv(op, g, convForward, xp, wp, yp, 0)
}

// ConvBackwardData implements backend.Device: dx = conv^T(dy, w), added into dx when accumulate is set.
func (d *Device) ConvBackwardData(p backend.ConvParams, dy, w, dx backend.Tensor, accumulate bool) error {
	const op = "ConvBackwardData"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	g, dxp, wp, dyp, err := d.convGeometry(op, p, "dx", dx, "w", w, "dy", dy)
	if err != nil || g.xTotal() == 0 {
		return err
	}
	if g.cout == 0 || g.oh*g.ow == 0 {
		if !accumulate {
			d.enqueue(&cmd{kind: cmdMemset, op: op, dst: dxp, n: g.xTotal()})
		}
		return nil
	}
	beta := float32(0)
	if accumulate {
		beta = 1
	}
	return d.conv(op, g, convBackwardData, dxp, wp, dyp, beta)
}

// ConvBackwardFilter implements backend.Device: dw is written (not accumulated).
func (d *Device) ConvBackwardFilter(p backend.ConvParams, x, dy, dw backend.Tensor) error {
	const op = "ConvBackwardFilter"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	g, xp, dwp, dyp, err := d.convGeometry(op, p, "x", x, "dw", dw, "dy", dy)
	if err != nil || g.wTotal() == 0 {
		return err
	}
	if g.n == 0 || g.oh*g.ow == 0 {
		d.enqueue(&cmd{kind: cmdMemset, op: op, dst: dwp, n: g.wTotal()})
		return nil
	}
	return d.conv(op, g, convBackwardFilter, xp, dwp, dyp, 0)
}

// alignment is the algoKey bit set of the operands that are 16-byte aligned.
func alignment(x, w, y uint64) uint8 {
	var a uint8
	for i, p := range []uint64{x, w, y} {
		if p%16 == 0 {
			a |= 1 << i
		}
	}
	return a
}

// conv queues one direction of a convolution (x, w, y as rn_conv takes them: dx for backward data, dw for
// backward filter), choosing its algorithm first if this geometry, direction and alignment is new.
func (d *Device) conv(op string, g convGeom, dir convDir, x, w, y uint64, beta float32) error {
	// The setup closures capture copies made inside the branches: a captured variable lives on the heap,
	// and capturing plan, a or g themselves would allocate on every call.
	plan := d.convPlans[g]
	if plan == nil {
		geom := g
		var np *convPlan
		if err := d.onOwner(op, func(dr gpu) error {
			var err error
			np, err = dr.newConvPlan(geom)
			return err
		}); err != nil {
			return err
		}
		plan = np
		d.convPlans[g] = plan
	}
	key := algoKey{dir: dir, align: alignment(x, w, y)}
	a := plan.algo[key]
	if a == nil {
		// The trials overwrite the output operand. That is harmless when the op overwrites it anyway; when
		// backward data accumulates, they run on scratch with the same alignment instead.
		fx := x
		if dir == convBackwardData && beta != 0 {
			s, err := d.tempAlloc(op, 4*g.xTotal()+16)
			if err != nil {
				return err
			}
			fx = s + x%16
		}
		p, k, fw, fy, limit := plan, key, w, y, d.wsLimit
		var na *convAlgo
		if err := d.onOwner(op, func(dr gpu) error {
			var err error
			na, err = dr.chooseAlgo(p, k, fx, fw, fy, limit)
			return err
		}); err != nil {
			return err
		}
		a = na
		plan.algo[key] = a
	}
	if a.ws > 0 {
		if err := d.grow(op, &d.workspace, a.ws); err != nil {
			return err
		}
	}
	d.countLib(libConvForward + libCall(dir))
	d.enqueue(&cmd{kind: cmdConv, op: op, conv: convArgs{
		dir: dir, plan: plan, algo: a, x: x, w: w, y: y, ws: d.workspace.ptr, wsBytes: a.ws, beta: beta,
	}})
	return nil
}
