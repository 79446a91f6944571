//go:build cuda

package cuda

// Synchronised batch norm (backend.BatchNormParams.Sync) with the GPU as one rank of a job whose other
// ranks run on CPU devices, against the same job with the CPU reference in the GPU's place: the GPU's
// slot of the exchange, its merge of the slots and its share of the backward's sums must give what the
// CPU's give.

import (
	"fmt"
	"sync"
	"testing"

	"resnet/internal/backend"
	"resnet/internal/backend/backendtest"
	"resnet/internal/cpu"
)

// bnPartner is a rank on a CPU device of its own, holding its slice of the batch.
type bnPartner struct {
	dev *cpu.Device
	t   backend.BatchNormTensors
	g   backend.BatchNormGrads
}

// bnPartnerValues are the contents of a partner rank's operands.
type bnPartnerValues struct {
	x, z, dy []float32
}

func newBNPartnerValues(r *rig, b bnCase) bnPartnerValues {
	cz, hz, wz := b.z()
	v := bnPartnerValues{x: uniformValues(r.rng, b.n*b.c*b.h*b.w, -1, 5), dy: uniformValues(r.rng, b.n*b.c*b.h*b.w, -1, 1)}
	if cz > 0 {
		v.z = uniformValues(r.rng, b.n*cz*hz*wz, -1, 1)
	}
	return v
}

// newBNPartner allocates a partner's operands: vals, and the layer's parameters and running statistics
// as f holds them on the CPU.
func newBNPartner(r *rig, b bnCase, f *bnTwins, vals bnPartnerValues) *bnPartner {
	r.t.Helper()
	d := cpu.NewWithWorkers(1)
	r.t.Cleanup(d.Close)
	tensor := func(v []float32, shape ...int) backend.Tensor {
		x, err := d.Alloc(backend.Shape(shape), backend.F32, backend.NCHW)
		mustOK(r.t, err)
		if v != nil {
			mustOK(r.t, d.Upload(x, v))
		}
		return x
	}
	vec := func(x twin) backend.Tensor { return tensor(r.host(onCPU, x), b.c) }
	shape := []int{b.n, b.c, b.h, b.w}
	p := &bnPartner{dev: d}
	p.t = backend.BatchNormTensors{X: tensor(vals.x, shape...), Y: tensor(nil, shape...), Gamma: vec(f.gamma), Beta: vec(f.beta),
		RunningMean: vec(f.rm), RunningVar: vec(f.rv), SaveMean: tensor(nil, b.c), SaveInvStd: tensor(nil, b.c)}
	p.g = backend.BatchNormGrads{X: p.t.X, Y: p.t.Y, DY: tensor(vals.dy, shape...), Gamma: p.t.Gamma, SaveMean: p.t.SaveMean,
		SaveInvStd: p.t.SaveInvStd, DX: tensor(nil, shape...), DGamma: tensor(nil, b.c), DBeta: tensor(nil, b.c)}
	if cz, hz, wz := b.z(); cz > 0 {
		p.t.Z, p.g.DZ = tensor(vals.z, b.n, cz, hz, wz), tensor(nil, b.n, cz, hz, wz)
	}
	return p
}

// syncRanks runs call for every rank at once, each in a goroutine, the ranks joined through memory, and
// returns the number of exchanges they made.
func syncRanks(t *testing.T, devs []backend.Device, call func(rank int, s backend.BatchNormSyncer) error) int {
	t.Helper()
	group, syncers := backendtest.NewSyncGroup(devs)
	errs := make([]error, len(devs))
	var wg sync.WaitGroup
	for r := range devs {
		wg.Go(func() { errs[r] = call(r, syncers[r]) })
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	return group.Rounds()
}

// bnSyncGPUCases: ranks' images, and the rank the GPU (or, for the reference, the CPU device of the rig)
// plays.
var bnSyncGPUCases = []struct {
	b     bnCase // b.n is unused: sizes give each rank's
	sizes []int
	at    int
}{
	{bnCase{c: 6, h: 5, w: 3}, []int{2, 3}, 0},
	{bnCase{c: 8, h: 4, w: 4, relu: true, shortcut: identityShortcut}, []int{3, 2, 2}, 1},
	{bnCase{c: 24, h: 3, w: 5, relu: true, shortcut: optionAShortcut}, []int{2, 1, 3}, 2},
}

func TestSyncedBatchNormMatchesCPU(t *testing.T) {
	openGPU(t, backend.Options{})
	for _, format := range []struct {
		dt     backend.DType
		layout backend.Layout
	}{{backend.F32, backend.NCHW}, {backend.BF16, backend.NHWC}} {
		for _, unfused := range []bool{false, true} {
			for i, sc := range bnSyncGPUCases {
				b := sc.b
				b.n = sc.sizes[sc.at]
				name := fmt.Sprintf("%v_%v_unfused%v/%v_ranks%v_at%d", format.dt, format.layout, unfused, b, sc.sizes, sc.at)
				t.Run(name, func(t *testing.T) {
					checkSyncedBN(t, formatOptions(format.dt, format.layout, unfused), sc.b, sc.sizes, sc.at, uint64(4100+i))
				})
			}
		}
	}
}

// checkSyncedBN runs one synchronised forward and backward twice, the rig's rank on the CPU reference and
// then on the GPU, the other ranks on CPU devices with the same values, and compares the rig's rank's
// outputs as TestBatchNormMatchesCPU does, and the other ranks' between the two runs.
func checkSyncedBN(t *testing.T, opt backend.Options, b bnCase, sizes []int, at int, seed uint64) {
	r := newRig(t, opt, seed)
	rb := b
	rb.n = sizes[at]
	f := newBNTwins(r, rb, nil)
	partners := map[side][]*bnPartner{}
	for rank, n := range sizes {
		if rank == at {
			partners[onCPU], partners[onGPU] = append(partners[onCPU], nil), append(partners[onGPU], nil)
			continue
		}
		pb := b
		pb.n = n
		vals := newBNPartnerValues(r, pb)
		for _, s := range []side{onCPU, onGPU} {
			partners[s] = append(partners[s], newBNPartner(r, pb, f, vals))
		}
	}
	run := func(s side, op string, call func(d backend.Device, p backend.BatchNormParams, pt *bnPartner) error) {
		devs := make([]backend.Device, len(sizes))
		for rank, pt := range partners[s] {
			if devs[rank] = r.dev(s); pt != nil {
				devs[rank] = pt.dev
			}
		}
		rounds := syncRanks(t, devs, func(rank int, sy backend.BatchNormSyncer) error {
			p := f.p
			p.Sync = sy
			return call(devs[rank], p, partners[s][rank])
		})
		mustOK(t, r.gpu.Sync())
		if rounds != 1 {
			t.Fatalf("%s on %v: the ranks exchanged %d times, want 1", op, s, rounds)
		}
	}
	comparePartners := func(what string, pick func(pt *bnPartner) backend.Tensor, tl tolerance) {
		for rank, pt := range partners[onGPU] {
			if pt == nil {
				continue
			}
			got, want := partnerValues(t, pt, pick), partnerValues(t, partners[onCPU][rank], pick)
			if msg := compareValues(got, want, pick(pt).Shape, tl); msg != "" {
				t.Errorf("rank %d %s: %s", rank, what, msg)
			}
		}
	}

	for _, s := range []side{onCPU, onGPU} {
		run(s, "BatchNormForwardTraining", func(d backend.Device, p backend.BatchNormParams, pt *bnPartner) error {
			if pt != nil {
				return d.BatchNormForwardTraining(p, pt.t)
			}
			return d.BatchNormForwardTraining(p, f.tensors(s))
		})
	}
	r.expect("forward y", f.y, f.yTol(bnYTol))
	r.expect("SaveMean", f.saveMean, bnStatTol)
	r.expect("SaveInvStd", f.saveInvStd, bnStatTol)
	r.expect("RunningMean", f.rm, bnStatTol)
	r.expect("RunningVar", f.rv, bnStatTol)
	comparePartners("forward y", func(pt *bnPartner) backend.Tensor { return pt.t.Y }, bnYTol)
	comparePartners("SaveInvStd", func(pt *bnPartner) backend.Tensor { return pt.t.SaveInvStd }, bnStatTol)

	// The backward starts from identical operands on both runs (as TestBatchNormMatchesCPU's does).
	r.mirror(f.y, f.saveMean, f.saveInvStd)
	for rank, pt := range partners[onGPU] {
		if pt == nil {
			continue
		}
		for _, pick := range []func(*bnPartner) backend.Tensor{
			func(pt *bnPartner) backend.Tensor { return pt.t.Y },
			func(pt *bnPartner) backend.Tensor { return pt.t.SaveMean },
			func(pt *bnPartner) backend.Tensor { return pt.t.SaveInvStd },
		} {
			mustOK(t, pt.dev.Upload(pick(pt), partnerValues(t, partners[onCPU][rank], pick)))
		}
	}
	for _, s := range []side{onCPU, onGPU} {
		run(s, "BatchNormBackward", func(d backend.Device, p backend.BatchNormParams, pt *bnPartner) error {
			if pt != nil {
				return d.BatchNormBackward(p, pt.g)
			}
			return d.BatchNormBackward(p, f.grads(s))
		})
	}
	r.expect("backward dx", f.dx, bnGradTol.rounded(f.dt, 1, 0))
	r.expect("backward dgamma", f.dgamma, bnGradTol)
	r.expect("backward dbeta", f.dbeta, bnGradTol)
	if f.p.Residual {
		r.expect("backward dz", f.dz, exactTol)
	}
	comparePartners("backward dx", func(pt *bnPartner) backend.Tensor { return pt.g.DX }, bnGradTol)
	comparePartners("backward dgamma", func(pt *bnPartner) backend.Tensor { return pt.g.DGamma }, bnGradTol)
}

func partnerValues(t *testing.T, pt *bnPartner, pick func(*bnPartner) backend.Tensor) []float32 {
	t.Helper()
	x := pick(pt)
	v := make([]float32, x.Numel())
	mustOK(t, pt.dev.Download(v, x))
	return v
}
