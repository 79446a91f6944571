package cpu

import (
	"strings"
	"testing"

	"resnet/internal/backend"
)

func TestRegisteredAsCPU(t *testing.T) {
	d, err := backend.Open("cpu", backend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Name() != "cpu" {
		t.Fatalf("Name() = %q, want cpu", d.Name())
	}
	must(t, d.Sync())
}

func TestBufferOps(t *testing.T) {
	d := NewWithWorkers(1)
	x, err := d.Alloc(backend.Shape{2, 3}, backend.F32, backend.NCHW)
	must(t, err)
	assertClose(t, "fresh alloc", values(t, x), make([]float64, 6), 0, 0)
	must(t, d.Upload(x, []float32{1, 2, 3, 4, 5, 6}))
	out := make([]float32, 6)
	must(t, d.Download(out, x))
	assertClose(t, "download", out, []float64{1, 2, 3, 4, 5, 6}, 0, 0)

	y := tensor(t, d, nil, 3, 2) // same count, other shape
	must(t, d.Copy(y, x))
	assertClose(t, "copy", values(t, y), []float64{1, 2, 3, 4, 5, 6}, 0, 0)

	// A view of the second row only.
	row := backend.Tensor{Shape: backend.Shape{3}, DType: backend.F32, Buf: x.Buf, Off: 3}
	v, err := Float32s(row)
	must(t, err)
	assertClose(t, "view", v, []float64{4, 5, 6}, 0, 0)
	must(t, d.Zero(row))
	assertClose(t, "zero view", values(t, x), []float64{1, 2, 3, 0, 0, 0}, 0, 0)

	l, err := d.Alloc(backend.Shape{3}, backend.I32, backend.NCHW)
	must(t, err)
	must(t, d.UploadInt32(l, []int32{7, -1, 2}))
	iv, err := Int32s(l)
	must(t, err)
	if iv[0] != 7 || iv[1] != -1 || iv[2] != 2 {
		t.Fatalf("Int32s = %v", iv)
	}
	must(t, d.Zero(l))
	if iv[0] != 0 {
		t.Fatalf("Zero left %v", iv)
	}

	d.Free(x)
	if err := d.Upload(x, out); err == nil || !strings.Contains(err.Error(), "freed") {
		t.Fatalf("Upload to a freed tensor: err = %v, want one saying it was freed", err)
	}
}

// foreignBuffer stands for storage allocated by another backend.
type foreignBuffer struct{}

func (foreignBuffer) Len() int             { return 1 << 20 }
func (foreignBuffer) DType() backend.DType { return backend.F32 }
func (foreignBuffer) Freed() bool          { return false }

// Bad operands return an error naming the op; none may panic.
func TestBadOperandsReturnErrors(t *testing.T) {
	d := NewWithWorkers(2)
	defer d.Close()
	f := func(shape ...int) backend.Tensor { return tensor(t, d, nil, shape...) }
	x, w, y := f(2, 3, 8, 8), f(4, 3, 3, 3), f(2, 4, 8, 8)
	same := backend.ConvParams{Stride: 1, Pad: 1}
	vec := func(c int) backend.Tensor { return f(c) }
	bnT := func(c int) backend.BatchNormTensors {
		return backend.BatchNormTensors{X: f(2, c, 4, 4), Y: f(2, c, 4, 4), Gamma: vec(c), Beta: vec(c),
			RunningMean: vec(c), RunningVar: vec(c), SaveMean: vec(c), SaveInvStd: vec(c)}
	}
	bnG := func(c int) backend.BatchNormGrads {
		return backend.BatchNormGrads{X: f(2, c, 4, 4), Y: f(2, c, 4, 4), DY: f(2, c, 4, 4), Gamma: vec(c),
			SaveMean: vec(c), SaveInvStd: vec(c), DX: f(2, c, 4, 4), DGamma: vec(c), DBeta: vec(c)}
	}
	res := backend.BatchNormParams{Eps: 1e-5, Residual: true}
	withZ := func(zshape ...int) backend.BatchNormTensors {
		tt := bnT(8)
		tt.Z = f(zshape...)
		return tt
	}
	labels := labelsTensor(t, d, []int32{0, 10})
	badLayout := x
	badLayout.Layout = backend.Layout(1)
	foreign := x
	foreign.Buf = foreignBuffer{}
	outOfRange := x
	outOfRange.Off = 1

	cases := []struct {
		name, want string
		call       func() error
	}{
		{"conv channel mismatch", "ConvForward", func() error { return d.ConvForward(same, f(2, 5, 8, 8), w, y) }},
		{"conv output extent", "ConvForward", func() error { return d.ConvForward(backend.ConvParams{Stride: 2, Pad: 1}, x, w, y) }},
		{"conv batch mismatch", "ConvForward", func() error { return d.ConvForward(same, x, w, f(3, 4, 8, 8)) }},
		{"conv 3-D weight", "ConvForward", func() error { return d.ConvForward(same, x, f(4, 3, 9), y) }},
		{"conv zero stride", "stride", func() error { return d.ConvForward(backend.ConvParams{}, x, w, y) }},
		{"conv kernel larger than input", "does not fit", func() error {
			return d.ConvForward(backend.ConvParams{Stride: 1}, f(1, 3, 2, 2), w, f(1, 4, 1, 1))
		}},
		{"conv data wrong dx", "ConvBackwardData", func() error { return d.ConvBackwardData(same, y, w, f(2, 3, 7, 8), false) }},
		{"conv filter wrong dw", "ConvBackwardFilter", func() error { return d.ConvBackwardFilter(same, x, y, f(4, 3, 1, 1)) }},
		{"conv unknown layout", "NCHW", func() error { return d.ConvForward(same, badLayout, w, y) }},
		{"conv foreign buffer", "another backend", func() error { return d.ConvForward(same, foreign, w, y) }},
		{"conv view past the end", "views elements", func() error { return d.ConvForward(same, outOfRange, w, y) }},
		{"conv i32 input", "want f32", func() error {
			l := labels
			l.Shape = backend.Shape{1, 1, 1, 2}
			return d.ConvForward(backend.ConvParams{Stride: 1}, l, f(1, 1, 1, 1), f(1, 1, 1, 2))
		}},
		{"bn gamma shape", "Gamma", func() error {
			tt := bnT(4)
			tt.Gamma = vec(5)
			return d.BatchNormForwardTraining(backend.BatchNormParams{Eps: 1e-5}, tt)
		}},
		{"bn y shape", "Y", func() error {
			tt := bnT(4)
			tt.Y = f(2, 4, 4, 5)
			return d.BatchNormForwardInference(backend.BatchNormParams{Eps: 1e-5}, tt)
		}},
		{"bn single value per channel", "at least 2", func() error {
			tt := bnT(4)
			tt.X, tt.Y = f(1, 4, 1, 1), f(1, 4, 1, 1)
			return d.BatchNormForwardTraining(backend.BatchNormParams{}, tt)
		}},
		{"bn residual missing", "Z", func() error { return d.BatchNormForwardTraining(res, bnT(8)) }},
		{"bn residual odd channel difference", "even", func() error { return d.BatchNormForwardTraining(res, withZ(2, 5, 8, 8)) }},
		{"bn residual more channels", "even", func() error { return d.BatchNormForwardTraining(res, withZ(2, 10, 4, 4)) }},
		{"bn residual non-integer stride", "stride", func() error { return d.BatchNormForwardTraining(res, withZ(2, 4, 6, 6)) }},
		{"bn residual unequal strides", "stride", func() error { return d.BatchNormForwardTraining(res, withZ(2, 4, 8, 4)) }},
		{"bn residual batch", "batch", func() error { return d.BatchNormForwardTraining(res, withZ(3, 4, 8, 8)) }},
		{"bn backward dgamma", "DGamma", func() error {
			g := bnG(4)
			g.DGamma = vec(3)
			return d.BatchNormBackward(backend.BatchNormParams{}, g)
		}},
		{"bn backward dz", "DZ", func() error {
			g := bnG(4)
			g.DZ = f(2, 4, 4, 3)
			return d.BatchNormBackward(backend.BatchNormParams{Residual: true}, g)
		}},
		{"maxpool y shape", "MaxPoolForward", func() error {
			return d.MaxPoolForward(backend.PoolParams{Kernel: 3, Stride: 2, Pad: 1}, x, f(2, 3, 3, 3))
		}},
		{"maxpool padding over half the kernel", "padding", func() error {
			return d.MaxPoolForward(backend.PoolParams{Kernel: 2, Stride: 1, Pad: 2}, x, f(2, 3, 11, 11))
		}},
		{"maxpool dx shape", "dx", func() error {
			p := backend.PoolParams{Kernel: 2, Stride: 2}
			return d.MaxPoolBackward(p, x, f(2, 3, 4, 4), f(2, 3, 4, 4), f(2, 3, 8, 7))
		}},
		{"avgpool y shape", "GlobalAvgPoolForward", func() error { return d.GlobalAvgPoolForward(x, f(2, 4)) }},
		{"avgpool dy shape", "GlobalAvgPoolBackward", func() error { return d.GlobalAvgPoolBackward(f(3, 3), x) }},
		{"linear in mismatch", "LinearForward", func() error { return d.LinearForward(f(2, 5), f(3, 4), f(3), f(2, 3)) }},
		{"linear bias", "b", func() error { return d.LinearForward(f(2, 4), f(3, 4), f(4), f(2, 3)) }},
		{"linear dw", "dw", func() error {
			return d.LinearBackward(f(2, 4), f(3, 4), f(2, 3), backend.Tensor{}, f(4, 3), f(3))
		}},
		{"ce label out of range", "outside [0, 10)", func() error {
			return d.SoftmaxCrossEntropy(f(2, 10), labels, f(2), f(2, 10), 1)
		}},
		{"ce labels f32", "i32", func() error { return d.SoftmaxCrossEntropy(f(2, 10), f(2), f(2), f(2, 10), 1) }},
		{"ce loss shape", "loss", func() error {
			return d.SoftmaxCrossEntropy(f(2, 11), labels, f(3), f(2, 11), 1)
		}},
		{"sgd grad shape", "slot 1", func() error {
			return d.SGDStep(backend.SGDParams{LR: 0.1}, []backend.SGDSlot{{Param: f(3), Grad: f(3)}, {Param: f(3), Grad: f(4)}})
		}},
		{"sgd missing buffer", "Buf", func() error {
			return d.SGDStep(backend.SGDParams{LR: 0.1, Momentum: 0.9}, []backend.SGDSlot{{Param: f(3), Grad: f(3)}})
		}},
		{"alloc unknown layout", "layout(1)", func() error { _, err := d.Alloc(backend.Shape{1}, backend.F32, backend.Layout(1)); return err }},
		{"alloc unknown dtype", "dtype(2)", func() error { _, err := d.Alloc(backend.Shape{1}, backend.DType(2), backend.NCHW); return err }},
		{"alloc negative", "negative", func() error { _, err := d.Alloc(backend.Shape{2, -1}, backend.F32, backend.NCHW); return err }},
		{"upload length", "Upload", func() error { return d.Upload(f(3), []float32{1, 2}) }},
		{"upload int32 into f32", "want i32", func() error { return d.UploadInt32(f(2), []int32{1, 2}) }},
		{"download length", "Download", func() error { return d.Download(make([]float32, 2), f(3)) }},
		{"copy dtype", "Copy", func() error { return d.Copy(f(2), labels) }},
		{"copy count", "Copy", func() error { return d.Copy(f(2), f(3)) }},
		{"zero unallocated", "not allocated", func() error { return d.Zero(backend.Tensor{}) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("panicked: %v", r)
					}
				}()
				err = c.call()
			}()
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "cpu: ") {
				t.Fatalf("error %q does not mention %q", err, c.want)
			}
		})
	}

	// A rejected SGD step must leave every parameter as it was.
	p := tensor(t, d, []float32{1, 2}, 2)
	err := d.SGDStep(backend.SGDParams{LR: 1}, []backend.SGDSlot{
		{Param: p, Grad: tensor(t, d, []float32{1, 1}, 2)}, {Param: f(2), Grad: f(3)}})
	if err == nil {
		t.Fatal("no error for a bad second slot")
	}
	assertClose(t, "untouched param", values(t, p), []float64{1, 2}, 0, 0)
}
