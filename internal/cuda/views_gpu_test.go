//go:build cuda

package cuda

import (
	"fmt"
	"testing"

	"resnet/internal/backend"
)

// The model keeps every parameter in one allocation (and every gradient in another) and hands the ops
// views with a nonzero Off. A conv weight and a batch norm's gamma, beta and running statistics viewed that
// way must give the CPU's results, and the elements between the views must not change.
func TestParameterViews(t *testing.T) {
	r := newRig(t, backend.Options{}, 900)
	c := convCase{4, 16, 16, 16, 32, 3, 1, 1}
	wn, ch := c.cout*c.cin*c.k*c.k, c.cout
	// Offsets in the parameter and gradient allocations; the gaps hold values no op may touch.
	const gap = 3
	offW := 5
	offVec := map[string]int{}
	next := offW + wn + gap
	for _, name := range []string{"gamma", "beta", "running_mean", "running_var"} {
		offVec[name] = next
		next += ch + gap
	}
	total := next + 2
	params, _ := r.random(-9, 9, total)
	grads, _ := r.random(-9, 9, total)
	gradOf := map[string]string{"dgamma": "gamma", "dbeta": "beta"}
	vec := func(name string, vals []float32) twin {
		if off, ok := offVec[name]; ok {
			v := r.view(params, off, ch)
			r.set(v, vals)
			return v
		}
		if p, ok := gradOf[name]; ok {
			v := r.view(grads, offVec[p], ch)
			r.set(v, vals)
			return v
		}
		return r.filled(vals, ch)
	}

	p := backend.ConvParams{Stride: c.stride, Pad: c.pad}
	x, _ := r.random(-1, 1, c.n, c.cin, c.h, c.w)
	w := r.view(params, offW, c.cout, c.cin, c.k, c.k)
	r.set(w, uniformValues(r.rng, wn, -0.08, 0.08))
	dw := r.view(grads, offW, c.cout, c.cin, c.k, c.k)
	y, _ := r.random(-9, 9, c.n, c.cout, c.oh(), c.ow())
	r.run("ConvForward", func(d backend.Device, s side) error { return d.ConvForward(p, x.on(s), w.on(s), y.on(s)) })
	r.expect("conv forward with an offset weight", y, convTol)

	b := bnCase{n: c.n, c: ch, h: c.oh(), w: c.ow(), relu: true, shortcut: identityShortcut}
	f := newBNTwins(r, b, vec)
	r.mirror(y)
	r.set(f.x, r.host(onCPU, y))
	f.forwardTraining(r, bnYTol)
	f.backward(r)
	f.inference(r, bnYTol)

	dy, _ := r.random(-1, 1, c.n, c.cout, c.oh(), c.ow())
	r.run("ConvBackwardFilter", func(d backend.Device, s side) error {
		return d.ConvBackwardFilter(p, x.on(s), dy.on(s), dw.on(s))
	})
	r.expect("conv backward filter into an offset view", dw, convTol)
	dx, _ := r.random(-9, 9, c.n, c.cin, c.h, c.w)
	r.run("ConvBackwardData", func(d backend.Device, s side) error {
		return d.ConvBackwardData(p, dy.on(s), w.on(s), dx.on(s), false)
	})
	r.expect("conv backward data from an offset weight", dx, convTol)

	// Every gap, in both allocations, still holds its initial value.
	gaps := [][2]int{{0, offW}, {offW + wn, offVec["gamma"]}}
	for _, name := range []string{"gamma", "beta", "running_mean"} {
		gaps = append(gaps, [2]int{offVec[name] + ch, offVec[name] + ch + gap})
	}
	gaps = append(gaps, [2]int{offVec["running_var"] + ch, total})
	for _, g := range gaps {
		for name, buf := range map[string]twin{"parameters": params, "gradients": grads} {
			r.expect(fmt.Sprintf("%s [%d, %d) between views", name, g[0], g[1]), r.view(buf, g[0], g[1]-g[0]), exactTol)
		}
	}
}

// Transfers and the element-wise helpers on views: Upload, Download, Copy and Zero touch exactly the
// elements a view covers.
func TestTransfersOnViews(t *testing.T) {
	g := openGPU(t, backend.Options{})
	r := newRig(t, backend.Options{}, 901)
	base, _ := r.random(-1, 1, 1000)
	a := r.view(base, 7, 10, 13) // 130 elements at 7
	b := r.view(base, 500, 130)  // same count, other shape
	vals := uniformValues(r.rng, 130, 2, 3)
	r.set(a, vals)
	if msg := compareValues(r.host(onGPU, a), vals, a.shape(), exactTol); msg != "" {
		t.Errorf("Upload then Download of a view: %s", msg)
	}
	r.run("Copy", func(d backend.Device, s side) error { return d.Copy(b.on(s), a.on(s)) })
	r.run("Zero", func(d backend.Device, s side) error { return d.Zero(r.view(base, 300, 50).on(s)) })
	r.expect("whole buffer after Upload, Copy and Zero on views", base, exactTol)

	labels := r.alloc(backend.I32, 5)
	if err := g.UploadInt32(labels.g, []int32{1, 2, 3}); err == nil {
		t.Errorf("UploadInt32 of 3 values into 5 elements succeeded, want an error")
	}
}

// Pinned host buffers from the device work as ordinary slices for Upload and Download.
func TestPinnedBuffers(t *testing.T) {
	g := openGPU(t, backend.Options{})
	const n = 1<<20 + 3
	src, dst := g.PinnedFloat32s(n), g.PinnedFloat32s(n)
	if len(src) != n || len(dst) != n {
		t.Fatalf("PinnedFloat32s(%d) returned %d and %d elements", n, len(src), len(dst))
	}
	r := seededRand(902)
	for i := range src {
		src[i] = r.Float32()
	}
	x, err := g.Alloc(backend.Shape{n}, backend.F32, backend.NCHW)
	mustOK(t, err)
	defer g.Free(x)
	mustOK(t, g.Upload(x, src))
	mustOK(t, g.Download(dst, x))
	if msg := compareValues(dst, src, backend.Shape{n}, exactTol); msg != "" {
		t.Errorf("pinned round trip: %s", msg)
	}
}

// Bad operands give errors, never panics or crashes (backend.Device's contract).
func TestBadOperandsReturnErrors(t *testing.T) {
	g := openGPU(t, backend.Options{})
	r := newRig(t, backend.Options{}, 903)
	x := r.zeros(2, 3, 8, 8)
	w := r.zeros(4, 3, 3, 3)
	wrongY := r.zeros(2, 4, 7, 7) // a 3x3/1/1 conv of 8x8 gives 8x8
	gamma := r.zeros(3)
	cpuOwned := r.zeros(2, 4, 8, 8).c
	for _, c := range []struct {
		name string
		call func() error
	}{
		{"ConvForward with a wrongly shaped output", func() error {
			return g.ConvForward(backend.ConvParams{Stride: 1, Pad: 1}, x.g, w.g, wrongY.g)
		}},
		{"ConvForward into a CPU tensor", func() error {
			return g.ConvForward(backend.ConvParams{Stride: 1, Pad: 1}, x.g, w.g, cpuOwned)
		}},
		{"BatchNormForwardTraining with Residual but no Z", func() error {
			return g.BatchNormForwardTraining(backend.BatchNormParams{Eps: 1e-5, Momentum: 0.1, Residual: true},
				backend.BatchNormTensors{X: x.g, Y: x.g, Gamma: gamma.g, Beta: gamma.g, RunningMean: gamma.g,
					RunningVar: gamma.g, SaveMean: gamma.g, SaveInvStd: gamma.g})
		}},
		{"Upload of the wrong length", func() error { return g.Upload(gamma.g, make([]float32, 4)) }},
		{"Download of the wrong length", func() error { return g.Download(make([]float32, 2), gamma.g) }},
		{"a view past the end of its buffer", func() error {
			v := gamma.g
			v.Off = 2
			return g.Upload(v, make([]float32, 3))
		}},
	} {
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Errorf("%s panicked: %v", c.name, p)
				}
			}()
			if err := c.call(); err == nil {
				t.Errorf("%s: no error", c.name)
			} else {
				t.Logf("%s: %v", c.name, err)
			}
		}()
	}
	// The device still works afterwards.
	mustOK(t, g.Sync())
}
