//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"testing"

	"resnet/internal/backend"
)

// poolCase is a max-pool geometry on x (n, c, h, w).
type poolCase struct{ n, c, h, w, k, stride, pad int }

func (p poolCase) oh() int { return backend.OutSize(p.h, p.k, p.stride, p.pad) }
func (p poolCase) ow() int { return backend.OutSize(p.w, p.k, p.stride, p.pad) }
func (p poolCase) String() string {
	return fmt.Sprintf("N%d_C%d_%dx%d_k%ds%dp%d", p.n, p.c, p.h, p.w, p.k, p.stride, p.pad)
}

var poolCases = []poolCase{
	{2, 64, 112, 112, 3, 2, 1}, // the ResNet stem pool
	{2, 3, 7, 9, 3, 2, 1},      // the stem pool on an odd input
	{1, 2, 8, 6, 2, 2, 0},
	{2, 3, 6, 5, 3, 1, 1}, // overlapping windows add into the same dx
	{1, 1, 5, 5, 1, 1, 0},
	{3, 5, 4, 7, 4, 3, 2},
}

// Max pooling. Inputs are quantised to quarters so that most windows hold ties: the forward value is the
// same whichever tied element wins, but the backward must send the gradient to the first maximum in
// row-major window order, as the CPU and PyTorch do. The forward is a selection: exact. The backward adds
// at most ceil(k/stride)^2 gradients into one element, in an order that may differ: 1e-6.
func TestMaxPoolMatchesCPU(t *testing.T) {
	openGPU(t, backend.Options{})
	for i, c := range poolCases {
		t.Run(c.String(), func(t *testing.T) {
			r := newRig(t, backend.Options{}, uint64(400+i))
			p := backend.PoolParams{Kernel: c.k, Stride: c.stride, Pad: c.pad}
			xv := uniformValues(r.rng, c.n*c.c*c.h*c.w, -1, 1)
			for j := range xv {
				xv[j] = float32(int(xv[j]*4)) / 4
			}
			if c.n*c.c > 1 {
				// One plane all equal (every window a tie) and one all negative (padding must count as
				// -inf, not 0).
				plane := c.h * c.w
				for j := range plane {
					xv[j] = 0.5
					xv[plane+j] = -1 - float32(j%3)
				}
			}
			x := r.filled(xv, c.n, c.c, c.h, c.w)
			y, _ := r.random(-9, 9, c.n, c.c, c.oh(), c.ow())
			r.run("MaxPoolForward", func(d backend.Device, s side) error { return d.MaxPoolForward(p, x.on(s), y.on(s)) })
			r.expect("forward y", y, exactTol)

			r.mirror(y)
			dy, _ := r.random(-1, 1, c.n, c.c, c.oh(), c.ow())
			dx, _ := r.random(-9, 9, c.n, c.c, c.h, c.w)
			r.run("MaxPoolBackward", func(d backend.Device, s side) error {
				return d.MaxPoolBackward(p, x.on(s), y.on(s), dy.on(s), dx.on(s))
			})
			r.expect("backward dx", dx, tolerance{abs: 1e-6, rel: 1e-6})
		})
	}
}

// Global average pooling: the forward sums at most 56*56 values per plane (1e-6 absolute on O(0.1) means
// plus float32 rounding of the sum); the backward divides one value per plane (1 ulp of rounding apart
// if the GPU multiplies by 1/(H*W) instead).
func TestGlobalAvgPoolMatchesCPU(t *testing.T) {
	openGPU(t, backend.Options{})
	cases := []struct {
		n, c, h, w int
		flatY      bool
	}{
		{8, 64, 8, 8, true}, {2, 2048, 7, 7, true}, {2, 512, 7, 7, false}, {2, 64, 56, 56, true},
		{3, 5, 7, 3, false}, {1, 1, 1, 1, true},
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("N%d_C%d_%dx%d_y%s", c.n, c.c, c.h, c.w, map[bool]string{true: "NC", false: "NC11"}[c.flatY]), func(t *testing.T) {
			r := newRig(t, backend.Options{}, uint64(500+i))
			yshape := []int{c.n, c.c}
			if !c.flatY {
				yshape = []int{c.n, c.c, 1, 1}
			}
			x, _ := r.random(-1, 1, c.n, c.c, c.h, c.w)
			y, _ := r.random(-9, 9, yshape...)
			r.run("GlobalAvgPoolForward", func(d backend.Device, s side) error { return d.GlobalAvgPoolForward(x.on(s), y.on(s)) })
			r.expect("forward y", y, tolerance{abs: 1e-6, rel: 1e-5})

			dy, _ := r.random(-1, 1, yshape...)
			dx, _ := r.random(-9, 9, c.n, c.c, c.h, c.w)
			r.run("GlobalAvgPoolBackward", func(d backend.Device, s side) error { return d.GlobalAvgPoolBackward(dy.on(s), dx.on(s)) })
			r.expect("backward dx", dx, tolerance{abs: 1e-8, rel: 1e-6})
		})
	}
}

// Linear layers: cuBLAS SGEMM against the CPU's blocked GEMM, the same reasoning (and TF32 check) as for
// convolutions. db sums over the batch only.
func TestLinearMatchesCPU(t *testing.T) {
	openGPU(t, backend.Options{})
	cases := []struct {
		n, in, out int
		pooled4D   bool // x as the (N, C, 1, 1) output of global average pooling
	}{
		{2, 2048, 1000, false}, {8, 2048, 1000, true}, {8, 64, 10, false}, {128, 64, 10, true},
		{2, 512, 1000, false}, {5, 67, 11, true}, {1, 1, 1, false},
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("N%d_%dto%d_x%s", c.n, c.in, c.out, map[bool]string{true: "NC11", false: "NC"}[c.pooled4D]), func(t *testing.T) {
			r := newRig(t, backend.Options{}, uint64(600+i))
			xshape := []int{c.n, c.in}
			if c.pooled4D {
				xshape = []int{c.n, c.in, 1, 1}
			}
			x, _ := r.random(0, 1, xshape...) // post-ReLU averages are non-negative
			s := float32(1 / math.Sqrt(float64(c.in)))
			w, _ := r.random(-s, s, c.out, c.in)
			b, _ := r.random(-s, s, c.out)
			y, _ := r.random(-9, 9, c.n, c.out)
			r.run("LinearForward", func(d backend.Device, sd side) error { return d.LinearForward(x.on(sd), w.on(sd), b.on(sd), y.on(sd)) })
			r.expect("forward y", y, convTol)

			dy, _ := r.random(-1, 1, c.n, c.out)
			dx, _ := r.random(-9, 9, xshape...)
			dw, _ := r.random(-9, 9, c.out, c.in)
			db, _ := r.random(-9, 9, c.out)
			r.run("LinearBackward", func(d backend.Device, sd side) error {
				return d.LinearBackward(x.on(sd), w.on(sd), dy.on(sd), dx.on(sd), dw.on(sd), db.on(sd))
			})
			r.expect("backward dx", dx, convTol)
			r.expect("backward dw", dw, convTol)
			r.expect("backward db", db, convTol)

			// dx is optional (a first layer has no input gradient); dw and db must not change.
			r.mirror(dw, db)
			r.run("LinearBackward without dx", func(d backend.Device, sd side) error {
				return d.LinearBackward(x.on(sd), w.on(sd), dy.on(sd), backend.Tensor{}, dw.on(sd), db.on(sd))
			})
			r.expect("backward dw without dx", dw, convTol)
			r.expect("backward db without dx", db, convTol)
		})
	}
}

// Softmax cross-entropy. The GPU computes exp in float32 where the CPU uses float64: a few ulps on each
// probability, 1e-6 of the row's normaliser. loss: 1e-5 absolute plus 1e-5 relative (losses reach 2000
// on the extreme row). dlogits are probabilities times gradScale (<= 1/N): 1e-4 relative, and 1e-7
// absolute for probabilities that underflow differently.
func TestSoftmaxCrossEntropyMatchesCPU(t *testing.T) {
	openGPU(t, backend.Options{})
	cases := []struct{ n, k int }{{8, 10}, {32, 10}, {2, 1000}, {256, 1000}, {3, 1001}, {5, 1}, {6, 10}}
	for i, c := range cases {
		t.Run(fmt.Sprintf("N%d_K%d", c.n, c.k), func(t *testing.T) {
			r := newRig(t, backend.Options{}, uint64(700+i))
			lv := uniformValues(r.rng, c.n*c.k, -5, 5)
			if c.k >= 4 {
				// Extreme logits must not overflow: exp is taken after subtracting the row maximum.
				lv[0], lv[1], lv[c.k+3] = 1000, -1000, -3000
			}
			labels := make([]int32, c.n)
			for j := range labels {
				labels[j] = int32(r.rng.IntN(c.k))
			}
			if c.k >= 4 {
				labels[0] = 1 // the loss of a -2000 margin
			}
			logits := r.filled(lv, c.n, c.k)
			lab := r.labels(labels)
			loss, _ := r.random(-9, 9, c.n)
			dl, _ := r.random(-9, 9, c.n, c.k)
			scale := 1 / float32(c.n)
			r.run("SoftmaxCrossEntropy", func(d backend.Device, s side) error {
				return d.SoftmaxCrossEntropy(logits.on(s), lab.on(s), loss.on(s), dl.on(s), scale)
			})
			r.expect("loss", loss, tolerance{abs: 1e-5, rel: 1e-5})
			r.expect("dlogits", dl, tolerance{abs: 1e-7, rel: 1e-4})
		})
	}
}

// Soft targets (label smoothing with a mixup of two labels, and targets that do not sum to one exactly):
// the same sums in double as the CPU, in another order.
func TestSoftTargetCrossEntropyMatchesCPU(t *testing.T) {
	openGPU(t, backend.Options{})
	for i, c := range []struct{ n, k int }{{8, 10}, {2, 1000}, {3, 1001}, {5, 1}} {
		t.Run(fmt.Sprintf("N%d_K%d", c.n, c.k), func(t *testing.T) {
			r := newRig(t, backend.Options{}, uint64(750+i))
			lv := uniformValues(r.rng, c.n*c.k, -5, 5)
			tv := make([]float32, c.n*c.k)
			for s := range c.n {
				lam := r.rng.Float32()
				row := tv[s*c.k : (s+1)*c.k]
				for j := range row {
					row[j] = 0.1 / float32(c.k)
				}
				row[r.rng.IntN(c.k)] += 0.9 * lam
				row[r.rng.IntN(c.k)] += 0.9 * (1 - lam)
			}
			if c.k >= 4 {
				lv[0], lv[1] = 1000, -1000 // exp after subtracting the row maximum
			}
			logits, targets := r.filled(lv, c.n, c.k), r.filled(tv, c.n, c.k)
			loss, _ := r.random(-9, 9, c.n)
			dl, _ := r.random(-9, 9, c.n, c.k)
			r.run("SoftTargetCrossEntropy", func(d backend.Device, s side) error {
				return d.SoftTargetCrossEntropy(logits.on(s), targets.on(s), loss.on(s), dl.on(s), 0.5)
			})
			r.expect("loss", loss, tolerance{abs: 1e-5, rel: 1e-5})
			r.expect("dlogits", dl, tolerance{abs: 1e-7, rel: 1e-4})
		})
	}
}

// SGD is element-wise and the kernel rounds each operation on its own, as the CPU reference does where Go
// does not fuse multiply-adds; where it does (arm64, GOAMD64=v3) that is 1 ulp per operation over three
// steps, hence 1e-6 on O(1) values. Both the fused step (one launch for every slot) and the unfused one
// (a launch per slot) run, and the launch counters say which did.
func TestSGDStepMatchesCPU(t *testing.T) {
	openGPU(t, backend.Options{})
	for _, c := range []struct {
		name string
		p    backend.SGDParams
	}{
		{"momentum", backend.SGDParams{LR: 0.1, Momentum: 0.9}},
		{"nesterov", backend.SGDParams{LR: 0.1, Momentum: 0.9, Nesterov: true}},
		{"plain", backend.SGDParams{LR: 0.05}},
		// A loss scale's reciprocal: a power of two (GradScaler's), and one that rounds (a static 1000).
		{"unscaled", backend.SGDParams{LR: 0.1, Momentum: 0.9, GradScale: 1.0 / 65536}},
		{"unscaled plain", backend.SGDParams{LR: 0.05, GradScale: float32(1.0 / 1000)}},
	} {
		for _, m := range gpuModes {
			t.Run(c.name+"/"+m.name, func(t *testing.T) { testSGDStep(t, m.opt, c.p) })
		}
	}
}

func testSGDStep(t *testing.T, opt backend.Options, p backend.SGDParams) {
	r := newRig(t, opt, 800)
	// Parameters laid out like the model's: views into one allocation each for values,
	// gradients and momentum, with per-slot weight decay (none for BN and biases); the last
	// tensor spans many thread blocks and ends off any vector width.
	shapes := []struct {
		shape []int
		wd    float32
	}{
		{[]int{64, 64, 3, 3}, 5e-4}, {[]int{64}, 0}, {[]int{64}, 0}, {[]int{10, 64}, 5e-4}, {[]int{10}, 0},
		{[]int{1<<20 + 17}, 1e-4}, {[]int{1}, 0.5},
	}
	total := 0
	for _, s := range shapes {
		total += backend.Shape(s.shape).Numel()
	}
	const pad = 3 // slots start off any alignment
	values, _ := r.random(-1, 1, total+pad)
	grads, _ := r.random(-1, 1, total+pad)
	moms, _ := r.random(-0.5, 0.5, total+pad)
	var slots []sgdTwin
	off := pad
	for _, s := range shapes {
		sl := sgdTwin{r.view(values, off, s.shape...), r.view(grads, off, s.shape...), r.view(moms, off, s.shape...), s.wd}
		if p.Momentum == 0 {
			sl.buf = twin{} // PyTorch keeps no buffer without momentum
		}
		slots = append(slots, sl)
		off += backend.Shape(s.shape).Numel()
	}
	mustOK(t, r.gpu.Sync())
	r.gpu.ResetLaunchCounts()
	const steps = 3
	for step := range steps {
		r.run(fmt.Sprintf("SGDStep %d", step), func(d backend.Device, s side) error {
			return d.SGDStep(p, sgdSlots(slots, s))
		})
	}
	counts := launchesSince(t, r.gpu)
	checkPath(t, counts, sgdPath, opt.Unfused)
	if want := int64(steps); !opt.Unfused && counts["sgd_step"] != want {
		t.Errorf("sgd_step launched %d times for %d steps, want one launch per step", counts["sgd_step"], steps)
	}
	// The whole allocations: the updated slots and the padding before them, which must not move.
	r.expect("parameters", values, tolerance{abs: 1e-6, rel: 1e-6})
	r.expect("momentum buffers", moms, tolerance{abs: 1e-6, rel: 1e-6})
	r.expect("gradients untouched", grads, exactTol)
}

// sgdTwin is one SGD slot on both devices.
type sgdTwin struct {
	param, grad, buf twin
	wd               float32
}

func sgdSlots(slots []sgdTwin, s side) []backend.SGDSlot {
	out := make([]backend.SGDSlot, len(slots))
	for i, sl := range slots {
		out[i] = backend.SGDSlot{Param: sl.param.on(s), Grad: sl.grad.on(s), Buf: sl.buf.on(s), WeightDecay: sl.wd}
	}
	return out
}
