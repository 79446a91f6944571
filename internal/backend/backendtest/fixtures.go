package backendtest

import (
	"testing"

	"resnet/internal/backend"
)

// ops allocates the operands of one case on its device; the test frees them when it ends.
type ops struct {
	test *testing.T
	dev  backend.Device
}

// t returns a zeroed f32 tensor.
func (o *ops) t(shape ...int) backend.Tensor {
	o.test.Helper()
	x, err := o.dev.Alloc(backend.Shape(shape), backend.F32, backend.NCHW)
	if err != nil {
		o.test.Fatalf("Alloc %v: %v", shape, err)
	}
	o.test.Cleanup(func() { o.dev.Free(x) })
	return x
}

// labels returns an i32 tensor holding vals.
func (o *ops) labels(vals ...int32) backend.Tensor {
	o.test.Helper()
	x, err := o.dev.Alloc(backend.Shape{len(vals)}, backend.I32, backend.NCHW)
	if err != nil {
		o.test.Fatalf("Alloc %d labels: %v", len(vals), err)
	}
	o.test.Cleanup(func() { o.dev.Free(x) })
	if err := o.dev.UploadInt32(x, vals); err != nil {
		o.test.Fatal(err)
	}
	return x
}

// freed returns an f32 tensor whose storage was freed.
func (o *ops) freed(shape ...int) backend.Tensor {
	x := o.t(shape...)
	o.dev.Free(x)
	return x
}

// foreignBuffer stands for storage that another backend allocated: live, f32 and large enough for any
// view, so that only its owner is wrong.
type foreignBuffer struct{}

func (foreignBuffer) Len() int             { return 1 << 20 }
func (foreignBuffer) DType() backend.DType { return backend.F32 }
func (foreignBuffer) Freed() bool          { return false }

// foreign returns an f32 tensor in a foreignBuffer.
func (o *ops) foreign(shape ...int) backend.Tensor {
	return backend.Tensor{Shape: backend.Shape(shape), DType: backend.F32, Buf: foreignBuffer{}}
}

// relabelled returns an f32 tensor that claims to hold dt.
func (o *ops) relabelled(dt backend.DType, shape ...int) backend.Tensor {
	x := o.t(shape...)
	x.DType = dt
	return x
}

// reshaped returns x viewed with another shape.
func (o *ops) reshaped(x backend.Tensor, shape ...int) backend.Tensor {
	x.Shape = backend.Shape(shape)
	return x
}

// alloc allocates and frees a tensor, returning Alloc's error.
func (o *ops) alloc(shape backend.Shape, dt backend.DType, layout backend.Layout) error {
	x, err := o.dev.Alloc(shape, dt, layout)
	if err == nil {
		o.dev.Free(x)
	}
	return err
}

// bn returns valid forward operands of a batch norm over (2, c, 4, 4), changed by edit when it is not nil.
func (o *ops) bn(c int, edit func(*backend.BatchNormTensors)) backend.BatchNormTensors {
	t := backend.BatchNormTensors{X: o.t(2, c, 4, 4), Y: o.t(2, c, 4, 4), Gamma: o.t(c), Beta: o.t(c),
		RunningMean: o.t(c), RunningVar: o.t(c), SaveMean: o.t(c), SaveInvStd: o.t(c)}
	if edit != nil {
		edit(&t)
	}
	return t
}

// withZ returns the operands of a batch norm over (2, 8, 4, 4) with a shortcut input of zshape.
func (o *ops) withZ(zshape ...int) backend.BatchNormTensors {
	return o.bn(8, func(t *backend.BatchNormTensors) { t.Z = o.t(zshape...) })
}

// bnGrads returns valid backward operands of a batch norm over (2, 4, 4, 4) (with Y and DZ, for ReLU
// and a residual), changed by edit.
func (o *ops) bnGrads(edit func(*backend.BatchNormGrads)) backend.BatchNormGrads {
	const c = 4
	g := backend.BatchNormGrads{X: o.t(2, c, 4, 4), Y: o.t(2, c, 4, 4), DY: o.t(2, c, 4, 4), Gamma: o.t(c),
		SaveMean: o.t(c), SaveInvStd: o.t(c), DX: o.t(2, c, 4, 4), DZ: o.t(2, c, 4, 4), DGamma: o.t(c), DBeta: o.t(c)}
	edit(&g)
	return g
}

// find calls FindNonFinite and returns its error.
func (o *ops) find(nonNegative []bool, ts ...backend.Tensor) error {
	_, err := o.dev.FindNonFinite(ts, nonNegative)
	return err
}
