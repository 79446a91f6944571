//go:build cuda

package cuda

import (
	"fmt"
	"testing"

	"resnet/internal/backend"
)

// shortcutKind is the residual input of a batch norm: none, an identity shortcut (z shaped like x) or an
// option-A shortcut (z with fewer channels and twice the spatial size, zero-padded and subsampled).
type shortcutKind int

const (
	noShortcut shortcutKind = iota
	identityShortcut
	optionAShortcut
)

func (k shortcutKind) String() string {
	return [...]string{"none", "identity", "optionA"}[k]
}

// bnCase is one batch-norm geometry and mode. x is mean + spread*U(-1, 1): a mean far from zero tests that
// the variance is computed without cancellation.
type bnCase struct {
	n, c, h, w   int
	relu         bool
	shortcut     shortcutKind
	mean, spread float32
	yTol         tolerance // zero: bnYTol
}

// z returns the shape of the residual input (cz == 0: none).
func (b bnCase) z() (cz, hz, wz int) {
	switch b.shortcut {
	case identityShortcut:
		return b.c, b.h, b.w
	case optionAShortcut:
		return optionAChannels(b.c), 2 * b.h, 2 * b.w
	}
	return 0, 0, 0
}

// optionAChannels is the narrower input of an option-A shortcut into c channels: about half, differing from
// c by an even count so the zero padding is the same on both sides; 0 when there is none.
func optionAChannels(c int) int {
	cz := c / 2
	if (c-cz)%2 != 0 {
		cz--
	}
	return max(cz, 0)
}

func (b bnCase) String() string {
	s := fmt.Sprintf("N%d_C%d_%dx%d_relu%v_%v", b.n, b.c, b.h, b.w, b.relu, b.shortcut)
	if b.mean != 0 {
		s += fmt.Sprintf("_mean%g", b.mean)
	}
	return s
}

// bnShapes are the batch-norm inputs of the zoo (CIFAR at batch 8, ResNet-50 at batch 2) and odd ones.
var bnShapes = [][4]int{
	{8, 16, 32, 32}, {8, 32, 16, 16}, {8, 64, 8, 8},
	{2, 64, 112, 112}, {2, 256, 56, 56}, {2, 128, 28, 28}, {2, 1024, 14, 14}, {2, 2048, 7, 7},
	{3, 5, 7, 3}, {9, 2, 3, 3}, {1, 6, 3, 4}, {2, 16, 1, 1},
}

// bnCases is every shape with ReLU off and on and each kind of shortcut, plus a large-mean case. Under
// -short the widest shapes (1024 and 2048 channels) run one mode only: on the kernel emulator
// (-tags 'cuda kernelemu') each of their cases takes a minute.
func bnCases() []bnCase {
	var out []bnCase
	for _, s := range bnShapes {
		for _, relu := range []bool{false, true} {
			for _, k := range []shortcutKind{noShortcut, identityShortcut, optionAShortcut} {
				if k == optionAShortcut && optionAChannels(s[1]) < 1 {
					continue
				}
				if testing.Short() && s[1] >= 1024 && !(relu && k == identityShortcut) {
					continue
				}
				out = append(out, bnCase{n: s[0], c: s[1], h: s[2], w: s[3], relu: relu, shortcut: k})
			}
		}
	}
	// Mean 100, spread 1: E[x^2] - E[x]^2 in float32 loses the variance (ulp(1e4) ~ 1e-3 against a
	// variance of 1/3); Welford or two-pass does not. y is looser here: x itself has ulp 7.6e-6 and a
	// float32 mean is a few ulps off, times invstd ~1.7.
	out = append(out, bnCase{n: 4, c: 8, h: 14, w: 14, relu: true, shortcut: identityShortcut, mean: 100, spread: 1,
		yTol: tolerance{abs: 2e-4, rel: 1e-5}})
	return out
}

// Batch-norm tolerances. y = gamma*(x-mean)*invstd + beta (+z): float32 statistics over up to 25088
// values with a tree reduction are a few 1e-7 relative off, and y is O(5), so 3e-5 absolute is ~10x the
// expected error. The statistics themselves: 2e-5 relative. Gradients: the backward's
// inputs are made identical, so only the order of the per-channel sums differs; dgamma and dbeta are such
// sums and dx is built from them, hence an RMS-relative bound as for convolutions. dz is dy masked and
// moved: exact.
var (
	bnYTol    = tolerance{abs: 3e-5, rel: 1e-5}
	bnStatTol = tolerance{abs: 1e-6, rel: 2e-5}
	bnGradTol = tolerance{abs: 1e-5, rel: 1e-4, rms: true}
	exactTol  = tolerance{}
)

// bnTwins are the operands of a batch-norm forward and backward on both devices.
type bnTwins struct {
	p                    backend.BatchNormParams
	dt                   backend.DType // of the GPU's activations
	x, z, y              twin
	gamma, beta, rm, rv  twin
	saveMean, saveInvStd twin
	dy, dx, dz           twin
	dgamma, dbeta        twin
}

func (b *bnTwins) tensors(s side) backend.BatchNormTensors {
	return backend.BatchNormTensors{
		X: b.x.on(s), Z: b.z.on(s), Y: b.y.on(s),
		Gamma: b.gamma.on(s), Beta: b.beta.on(s),
		RunningMean: b.rm.on(s), RunningVar: b.rv.on(s),
		SaveMean: b.saveMean.on(s), SaveInvStd: b.saveInvStd.on(s),
	}
}

func (b *bnTwins) grads(s side) backend.BatchNormGrads {
	return backend.BatchNormGrads{
		X: b.x.on(s), Y: b.y.on(s), DY: b.dy.on(s), Gamma: b.gamma.on(s),
		SaveMean: b.saveMean.on(s), SaveInvStd: b.saveInvStd.on(s),
		DX: b.dx.on(s), DZ: b.dz.on(s), DGamma: b.dgamma.on(s), DBeta: b.dbeta.on(s),
	}
}

// perChannel allocates a (C) operand holding vals; tests of parameter views replace it.
type perChannel func(name string, vals []float32) twin

// newBNTwins uploads random operands for case b. Outputs start as garbage so that a missed write shows.
func newBNTwins(r *rig, b bnCase, vec perChannel) *bnTwins {
	if vec == nil {
		vec = func(_ string, v []float32) twin { return r.filled(v, b.c) }
	}
	mean, spread := b.mean, b.spread
	if spread == 0 {
		mean, spread = 2, 3
	}
	cz, hz, wz := b.z()
	f := &bnTwins{p: backend.BatchNormParams{Eps: 1e-5, Momentum: 0.1, ReLU: b.relu, Residual: cz > 0}}
	f.dt, _ = r.gpu.ActivationFormat()
	shape := []int{b.n, b.c, b.h, b.w}
	f.x = r.randomAct(mean-spread, mean+spread, shape...)
	f.y = r.randomAct(-9, 9, shape...)
	if cz > 0 {
		f.z = r.randomAct(-1, 1, b.n, cz, hz, wz) // bnShortcutScale
		f.dz = r.randomAct(-9, 9, b.n, cz, hz, wz)
	}
	f.gamma = vec("gamma", uniformValues(r.rng, b.c, -1.5, 1.5))
	f.beta = vec("beta", uniformValues(r.rng, b.c, -1, 1))
	f.rm = vec("running_mean", uniformValues(r.rng, b.c, -1, 1))
	f.rv = vec("running_var", uniformValues(r.rng, b.c, 0.5, 1.5))
	f.saveMean = vec("save_mean", uniformValues(r.rng, b.c, -9, 9))
	f.saveInvStd = vec("save_invstd", uniformValues(r.rng, b.c, -9, 9))
	f.dgamma = vec("dgamma", uniformValues(r.rng, b.c, -9, 9))
	f.dbeta = vec("dbeta", uniformValues(r.rng, b.c, -9, 9))
	f.dy = r.randomAct(-1, 1, shape...)
	f.dx = r.randomAct(-9, 9, shape...)
	return f
}

// bnShortcutScale bounds the shortcut input z of newBNTwins.
const bnShortcutScale = 1

// yTol widens the tolerance of y for the roundings to 16 bits: bn_normalize's output is rounded, and with
// a residual the sum with z again.
func (b *bnTwins) yTol(tl tolerance) tolerance {
	if b.p.Residual {
		return tl.rounded(b.dt, 2, bnShortcutScale)
	}
	return tl.rounded(b.dt, 1, 0)
}

// forwardTraining runs the training forward on both devices and compares every output.
func (b *bnTwins) forwardTraining(r *rig, yTol tolerance) {
	r.t.Helper()
	r.run("BatchNormForwardTraining", func(d backend.Device, s side) error {
		return d.BatchNormForwardTraining(b.p, b.tensors(s))
	})
	r.expect("forward y", b.y, b.yTol(yTol))
	r.expect("SaveMean", b.saveMean, bnStatTol)
	r.expect("SaveInvStd", b.saveInvStd, bnStatTol)
	r.expect("RunningMean", b.rm, bnStatTol)
	r.expect("RunningVar", b.rv, bnStatTol)
}

// backward runs the backward on both devices from identical inputs (the CPU's forward results) and
// compares every gradient.
func (b *bnTwins) backward(r *rig) {
	r.t.Helper()
	r.mirror(b.y, b.saveMean, b.saveInvStd)
	r.run("BatchNormBackward", func(d backend.Device, s side) error { return d.BatchNormBackward(b.p, b.grads(s)) })
	r.expect("backward dx", b.dx, bnGradTol.rounded(b.dt, 1, 0)) // dx is rounded once
	r.expect("backward dgamma", b.dgamma, bnGradTol)
	r.expect("backward dbeta", b.dbeta, bnGradTol)
	if b.p.Residual {
		r.expect("backward dz", b.dz, exactTol)
	}
}

// inference runs the inference forward on both devices and checks that it leaves the statistics alone.
func (b *bnTwins) inference(r *rig, yTol tolerance) {
	r.t.Helper()
	r.mirror(b.rm, b.rv)
	saved := r.host(onGPU, b.saveMean)
	r.run("BatchNormForwardInference", func(d backend.Device, s side) error {
		return d.BatchNormForwardInference(b.p, b.tensors(s))
	})
	r.expect("inference y", b.y, b.yTol(yTol))
	r.expect("inference leaves RunningMean", b.rm, exactTol)
	r.expect("inference leaves RunningVar", b.rv, exactTol)
	if msg := compareValues(r.host(onGPU, b.saveMean), saved, b.saveMean.shape(), exactTol); msg != "" {
		r.t.Errorf("inference wrote SaveMean: %s", msg)
	}
}

func (b bnCase) tolY() tolerance {
	if b.yTol != (tolerance{}) {
		return b.yTol
	}
	return bnYTol
}

func TestBatchNormMatchesCPU(t *testing.T) {
	openGPU(t, backend.Options{})
	for i, b := range bnCases() {
		t.Run(b.String(), func(t *testing.T) {
			r := newRig(t, backend.Options{}, uint64(200+i))
			f := newBNTwins(r, b, nil)
			f.forwardTraining(r, b.tolY())
			f.backward(r)
			f.inference(r, b.tolY())
		})
	}
}

// Two training forwards in a row must each fold their batch into the running statistics (momentum 0.1).
func TestBatchNormRunningStatsAccumulate(t *testing.T) {
	b := bnCase{n: 8, c: 32, h: 16, w: 16, relu: true}
	r := newRig(t, backend.Options{}, 11)
	f := newBNTwins(r, b, nil)
	for step := range 3 {
		r.set(f.x, uniformValues(r.rng, f.x.c.Numel(), float32(step)-1, float32(step)+2))
		f.forwardTraining(r, bnYTol)
	}
}
