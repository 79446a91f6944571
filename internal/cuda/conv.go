//go:build cuda

package cuda

// Convolutions on cuDNN (legacy descriptor API, cross-correlation), on activations in f32, bf16 or f16, NCHW
// or NHWC, always accumulating in f32. Per geometry (which includes the activation format) the tensor and
// filter descriptors are made once; per direction and operand alignment the algorithm is chosen once
// (algo.go: deterministic and by heuristics unless the options say otherwise) and kept, so a training step
// creates nothing and asks cuDNN nothing. No algorithm uses TF32 unless RESNET_CUDA_TF32=1.
//
// cuDNN's rules for the three directions (cudnnConvolutionForward, cudnnConvolutionBackwardData,
// cudnnConvolutionBackwardFilter, "supported configurations" in the cudnn_cnn library reference) are the
// same: x, w and y (or dx, dy, dw) have ONE data type, and the convolution descriptor's compute type goes
// with it:
//
//	x, w, y              compute type  configuration
//	CUDNN_DATA_FLOAT     FLOAT         FLOAT_CONFIG
//	CUDNN_DATA_HALF      FLOAT         PSEUDO_HALF_CONFIG (HALF compute would be TRUE_HALF_CONFIG)
//	CUDNN_DATA_BFLOAT16  FLOAT         PSEUDO_BFLOAT16_CONFIG, compute capability 8.0 and newer only
//
// So the filter must be converted to the activations' type (filters.go): f32 weights with bf16 data is
// no configuration. A filter descriptor in format CUDNN_TENSOR_NHWC is KRSC (Cout, KH, KW, Cin), in
// CUDNN_TENSOR_NCHW KCRS; tensor descriptors take the dimensions in NCHW order whatever the format. Which
// algorithms run a configuration and format differs per algorithm (FFT and Winograd are NCHW-only, for
// example); an algorithm that cannot run one is listed with a status other than CUDNN_STATUS_SUCCESS and
// is not chosen. The fallbacks (IMPLICIT_GEMM forward, ALGO_1 backward) are the algorithms the reference's
// per-algorithm tables list for every configuration above in both formats.

import "resnet/internal/backend"

// convGeom is the geometry of a convolution, the key of the plan cache.
type convGeom = backend.ConvGeometry

// ConvForward implements backend.Device.
func (d *Device) ConvForward(p backend.ConvParams, x, w, y backend.Tensor) error {
	return d.convOp(convForward, p, x, w, y, false)
}

// ConvBackwardData implements backend.Device: dx = conv^T(dy, w), added into dx when accumulate is set.
func (d *Device) ConvBackwardData(p backend.ConvParams, dy, w, dx backend.Tensor, accumulate bool) error {
	return d.convOp(convBackwardData, p, dx, w, dy, accumulate)
}

// ConvBackwardFilter implements backend.Device: dw is written (not accumulated).
func (d *Device) ConvBackwardFilter(p backend.ConvParams, x, dy, dw backend.Tensor) error {
	return d.convOp(convBackwardFilter, p, x, dw, dy, false)
}

// convOps names the op of each direction and its x-like, w-like and y-like operands.
var convOps = [...]struct {
	op    string
	names [3]string
}{
	convForward:        {"ConvForward", [3]string{"x", "w", "y"}},
	convBackwardData:   {"ConvBackwardData", [3]string{"dx", "w", "dy"}},
	convBackwardFilter: {"ConvBackwardFilter", [3]string{"x", "dw", "dy"}},
}

// convOp checks and queues one direction of a convolution on its x-like, w-like and y-like operands (dx
// for backward data, dw for backward filter).
func (d *Device) convOp(dir convDir, p backend.ConvParams, x, w, y backend.Tensor, accumulate bool) error {
	op, names := convOps[dir].op, convOps[dir].names
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	g, err := checkConv(dir, p, x, w, y)
	a := addrs{d: d, op: op, err: named(err)}
	var ptrs [3]uint64
	for i, t := range [3]backend.Tensor{x, w, y} {
		if i == convOutputOperand[dir] {
			ptrs[i] = a.of(names[i], t)
		} else {
			ptrs[i] = a.in(names[i], t)
		}
	}
	xp, wp, yp := ptrs[0], ptrs[1], ptrs[2]
	dst, n, empty := convOutput(dir, g, xp, wp, yp)
	switch {
	case a.err != nil || n == 0:
		return a.err
	case empty:
		if !accumulate {
			size := int64(g.DType.Size()) // an activation; the filter gradient is f32
			if dir == convBackwardFilter {
				size = 4
			}
			d.enqueue(&cmd{kind: cmdMemset, op: op, dst: dst, n: size * int64(n)})
		}
		return nil
	}
	beta := float32(0)
	if accumulate {
		beta = 1
	}
	switch {
	case nativeFilter(g):
	case dir == convBackwardFilter:
		return d.filterGradient(op, g, xp, wp, yp)
	default:
		if wp, err = d.filterCopy(op, g, w, wp); err != nil {
			return err
		}
	}
	return d.conv(op, g, dir, xp, wp, yp, beta)
}

// convOutputOperand is the index, among the x-like, w-like and y-like operands, of the one each direction
// writes.
var convOutputOperand = [...]int{convForward: 2, convBackwardData: 0, convBackwardFilter: 1}

// checkConv runs the checks of the op of direction dir.
func checkConv(dir convDir, p backend.ConvParams, x, w, y backend.Tensor) (convGeom, error) {
	switch dir {
	case convForward:
		return backend.CheckConvForward(p, x, w, y)
	case convBackwardData:
		return backend.CheckConvBackwardData(p, y, w, x)
	}
	return backend.CheckConvBackwardFilter(p, x, y, w)
}

// convOutput returns the operand direction dir writes, its element count, and whether each element is an
// empty sum (0, or what it holds when backward data accumulates).
func convOutput(dir convDir, g convGeom, x, w, y uint64) (dst uint64, n int, empty bool) {
	switch dir {
	case convForward:
		return y, g.YLen(), g.Cin == 0
	case convBackwardData:
		return x, g.XLen(), g.Cout == 0 || g.OH*g.OW == 0
	}
	return w, g.WLen(), g.N == 0 || g.OH*g.OW == 0
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
		// Timing overwrites the output operand. That is harmless when the op overwrites it anyway; when
		// backward data accumulates, the trials run on scratch with the same alignment instead.
		fx := x
		if dir == convBackwardData && beta != 0 && d.opt.Benchmark {
			s, err := d.tempAlloc(op, int64(g.DType.Size())*int64(g.XLen())+16)
			if err != nil {
				return err
			}
			fx = s + x%16
		}
		p, pol, fw, fy := plan, d.algoPolicy(), w, y
		var na *convAlgo
		if err := d.onOwner(op, func(dr gpu) error {
			var err error
			na, err = chooseConvAlgo(dr, pol, p, dir, fx, fw, fy)
			return err
		}); err != nil {
			return err
		}
		a = na
		plan.algo[key] = a
		d.recordConvChoice(g, dir, a)
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
