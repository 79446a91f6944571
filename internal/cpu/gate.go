package cpu

// The squeeze-and-excitation (SE) ops: the excitation's two fully connected layers on the pooled features,
// and the gate that scales each (n, c) plane by the sigmoid of its logit, with the residual add and ReLU
// of the unit it closes. A piece of the gate's work is a group of whole planes, so each plane's gradient
// sum is taken in one order whatever the worker count.

import (
	"math"

	"resnet/internal/backend"
)

// sigmoid is 1/(1 + e^-v), computed in float64 and rounded once.
func sigmoid(v float32) float32 { return float32(1 / (1 + math.Exp(-float64(v)))) }

// ExcitationForward implements backend.Device: H = relu(P W1^T + B1), S = H W2^T + B2.
func (d *Device) ExcitationForward(t backend.ExcitationTensors) error {
	g, err := backend.CheckExcitationForward(t)
	v := views{op: "ExcitationForward", err: named(err)}
	p, w1, b1, w2, b2 := v.f32("P", t.P), v.f32("W1", t.W1), v.f32("B1", t.B1), v.f32("W2", t.W2), v.f32("B2", t.B2)
	h, s := v.f32("H", t.H), v.f32("S", t.S)
	if v.err != nil {
		return v.err
	}
	n, c, r := g.N, g.C, g.R
	for i := 0; i < n; i++ {
		copy(h[i*r:(i+1)*r], b1)
		copy(s[i*c:(i+1)*c], b2)
	}
	d.sgemmParallel(false, true, n, r, c, 1, p, c, w1, c, 1, h, r)
	for i, e := range h {
		h[i] = max(e, 0)
	}
	d.sgemmParallel(false, true, n, c, r, 1, h, r, w2, r, 1, s, c)
	return nil
}

// ExcitationBackward implements backend.Device: the backward of the two layers of ExcitationForward, the
// ReLU's mask taken from H (an output of 0 passes no gradient, as in PyTorch), bias gradients summed over
// the batch in float64.
func (d *Device) ExcitationBackward(gr backend.ExcitationGrads) error {
	g, err := backend.CheckExcitationBackward(gr)
	v := views{op: "ExcitationBackward", err: named(err)}
	p, w1, w2, h := v.f32("P", gr.P), v.f32("W1", gr.W1), v.f32("W2", gr.W2), v.f32("H", gr.H)
	ds, dh, dp := v.f32("DS", gr.DS), v.f32("DH", gr.DH), v.f32("DP", gr.DP)
	dw1, db1, dw2, db2 := v.f32("DW1", gr.DW1), v.f32("DB1", gr.DB1), v.f32("DW2", gr.DW2), v.f32("DB2", gr.DB2)
	if v.err != nil {
		return v.err
	}
	n, c, r := g.N, g.C, g.R
	d.columnSums(db2, ds, n, c)
	d.sgemmParallel(true, false, c, r, n, 1, ds, c, h, r, 0, dw2, r)
	d.sgemmParallel(false, false, n, r, c, 1, ds, c, w2, r, 0, dh, r)
	for i, e := range h {
		if !(e > 0) {
			dh[i] = 0
		}
	}
	d.columnSums(db1, dh, n, r)
	d.sgemmParallel(true, false, r, c, n, 1, dh, r, p, c, 0, dw1, c)
	d.sgemmParallel(false, false, n, c, r, 1, dh, r, w1, c, 0, dp, c)
	return nil
}

type gateKind uint8

const (
	gateForward gateKind = iota
	gateBackward
	gateBackwardData
)

// gateJob is the state of one gate call; piece i covers planes split(planes, parts, i).
type gateJob struct {
	kind           gateKind
	planes, parts  int
	hw             int
	relu, residual bool
	x, s, z, y     []float32
	dy, dg, ds     []float32
	dpool, dx      []float32
}

func (j *gateJob) run(_, i int) {
	lo, hi := split(j.planes, j.parts, i)
	for pl := lo; pl < hi; pl++ {
		a, b := pl*j.hw, (pl+1)*j.hw
		sg := sigmoid(j.s[pl])
		switch j.kind {
		case gateForward:
			x, y := j.x[a:b], j.y[a:b]
			var z []float32
			if j.residual {
				z = j.z[a:b]
			}
			for k, e := range x {
				o := float32(e * sg)
				if z != nil {
					o += z[k]
				}
				if j.relu {
					o = max(o, 0)
				}
				y[k] = o
			}
		case gateBackward:
			x, y, dy, dg := j.x[a:b], j.y[a:b], j.dy[a:b], j.dg[a:b]
			var sum float64
			for k, e := range dy {
				if j.relu && !(y[k] > 0) {
					e = 0
				}
				dg[k] = e
				sum += float64(e) * float64(x[k])
			}
			j.ds[pl] = float32(float64(sg) * (1 - float64(sg)) * sum)
		case gateBackwardData:
			dg, dx := j.dg[a:b], j.dx[a:b]
			var q float32
			if j.dpool != nil {
				q = j.dpool[pl] / float32(j.hw)
			}
			for k, e := range dg {
				dx[k] = float32(e*sg) + q
			}
		}
	}
}

// runGate runs the gate job j on the worker pool.
func (d *Device) runGate(j gateJob) {
	j.parts = d.planeParts(j.planes)
	if j.parts == 0 {
		return
	}
	d.jobs.gate = j
	d.pool.run(&d.jobs.gate, j.parts)
	d.jobs.gate = gateJob{}
}

// ChannelGateForward implements backend.Device.
func (d *Device) ChannelGateForward(p backend.ChannelGateParams, x, s, z, y backend.Tensor) error {
	g, err := backend.CheckChannelGateForward(p, x, s, z, y)
	v := views{op: "ChannelGateForward", err: named(err)}
	j := gateJob{kind: gateForward, planes: g.N * g.C, hw: g.HW(), relu: p.ReLU, residual: p.Residual}
	j.x, j.s, j.y = v.f32("x", x), v.f32("s", s), v.f32("y", y)
	if p.Residual {
		j.z = v.f32("z", z)
	}
	if v.err != nil {
		return v.err
	}
	d.runGate(j)
	return nil
}

// ChannelGateBackward implements backend.Device; each plane's sum for DS is taken in float64.
func (d *Device) ChannelGateBackward(p backend.ChannelGateParams, gr backend.ChannelGateGrads) error {
	g, err := backend.CheckChannelGateBackward(gr)
	v := views{op: "ChannelGateBackward", err: named(err)}
	j := gateJob{kind: gateBackward, planes: g.N * g.C, hw: g.HW(), relu: p.ReLU}
	j.x, j.s, j.y, j.dy = v.f32("X", gr.X), v.f32("S", gr.S), v.f32("Y", gr.Y), v.f32("DY", gr.DY)
	j.dg, j.ds = v.f32("DG", gr.DG), v.f32("DS", gr.DS)
	if v.err != nil {
		return v.err
	}
	d.runGate(j)
	return nil
}

// ChannelGateBackwardData implements backend.Device.
func (d *Device) ChannelGateBackwardData(s, dg, dpool, dx backend.Tensor) error {
	g, err := backend.CheckChannelGateBackwardData(s, dg, dpool, dx)
	v := views{op: "ChannelGateBackwardData", err: named(err)}
	j := gateJob{kind: gateBackwardData, planes: g.N * g.C, hw: g.HW()}
	j.s, j.dg, j.dpool, j.dx = v.f32("s", s), v.f32("dg", dg), v.optional("dpool", dpool), v.f32("dx", dx)
	if v.err != nil {
		return v.err
	}
	d.runGate(j)
	return nil
}
