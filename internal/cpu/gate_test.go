package cpu

// The SE ops against naive loops in float64, and by finite differences (see gradcheck_test.go: the gate
// and the excitation are smooth but curved through the sigmoid, so eps = 1e-2 with the tolerances of
// batch norm; coordinates that flip a ReLU are skipped).

import (
	"fmt"
	"math"
	"testing"

	"resnet/internal/backend"
)

func sigmoid64(v float32) float64 { return 1 / (1 + math.Exp(-float64(v))) }

// naiveGate is y = act(x*sigmoid(s) + z) over (planes, hw), z nil without a residual.
func naiveGate(planes, hw int, x, s, z []float32, relu bool) []float64 {
	y := make([]float64, planes*hw)
	for pl := 0; pl < planes; pl++ {
		for k := 0; k < hw; k++ {
			i := pl*hw + k
			v := float64(x[i]) * sigmoid64(s[pl])
			if z != nil {
				v += float64(z[i])
			}
			if relu {
				v = math.Max(v, 0)
			}
			y[i] = v
		}
	}
	return y
}

// naiveGateBackward gives dg, ds and dx (the latter with the squeeze's dpool, when not nil).
func naiveGateBackward(planes, hw int, x, s, y, dy, dpool []float32, relu bool) (dg, ds, dx []float64) {
	dg, ds, dx = make([]float64, planes*hw), make([]float64, planes), make([]float64, planes*hw)
	for pl := 0; pl < planes; pl++ {
		sg := sigmoid64(s[pl])
		var sum float64
		for k := 0; k < hw; k++ {
			i := pl*hw + k
			g := float64(dy[i])
			if relu && y[i] <= 0 {
				g = 0
			}
			dg[i] = g
			sum += g * float64(x[i])
			dx[i] = g * sg
			if dpool != nil {
				dx[i] += float64(dpool[pl]) / float64(hw)
			}
		}
		ds[pl] = sg * (1 - sg) * sum
	}
	return dg, ds, dx
}

func TestChannelGateMatchesNaive(t *testing.T) {
	for _, p := range []backend.ChannelGateParams{{}, {ReLU: true}, {Residual: true}, {ReLU: true, Residual: true}} {
		t.Run(fmt.Sprintf("relu=%v,residual=%v", p.ReLU, p.Residual), func(t *testing.T) {
			d := NewWithWorkers(3)
			defer d.Close()
			r := newRand(21)
			n, c, h, w := 2, 5, 3, 4
			planes, hw := n*c, h*w
			xv, sv, zv := randSlice(r, planes*hw), randSlice(r, planes), randSlice(r, planes*hw)
			for i := range sv {
				sv[i] *= 4 // logits well inside and outside the sigmoid's linear part
			}
			x, s := tensor(t, d, xv, n, c, h, w), tensor(t, d, sv, n, c)
			z, y := tensor(t, d, zv, n, c, h, w), tensor(t, d, nil, n, c, h, w)
			var zref []float32
			if p.Residual {
				zref = zv
			}
			must(t, d.ChannelGateForward(p, x, s, z, y))
			assertClose(t, "y", values(t, y), naiveGate(planes, hw, xv, sv, zref, p.ReLU), 1e-6, 1e-6)

			dyv, dpv := randSlice(r, planes*hw), randSlice(r, planes)
			dy, dpool := tensor(t, d, dyv, n, c, h, w), tensor(t, d, dpv, n, c)
			dg, ds, dx := tensor(t, d, nil, n, c, h, w), tensor(t, d, nil, n, c), tensor(t, d, nil, n, c, h, w)
			must(t, d.ChannelGateBackward(p, backend.ChannelGateGrads{X: x, S: s, Y: y, DY: dy, DG: dg, DS: ds}))
			must(t, d.ChannelGateBackwardData(s, dg, dpool, dx))
			wantDG, wantDS, wantDX := naiveGateBackward(planes, hw, xv, sv, values(t, y), dyv, dpv, p.ReLU)
			assertClose(t, "dg", values(t, dg), wantDG, 0, 0)
			assertClose(t, "ds", values(t, ds), wantDS, 1e-6, 1e-5)
			assertClose(t, "dx", values(t, dx), wantDX, 1e-6, 1e-6)

			// Without the squeeze's gradient, and in place (dx is dg).
			_, _, wantDX = naiveGateBackward(planes, hw, xv, sv, values(t, y), dyv, nil, p.ReLU)
			must(t, d.ChannelGateBackwardData(s, dg, backend.Tensor{}, dg))
			assertClose(t, "dx in place", values(t, dg), wantDX, 1e-6, 1e-6)
		})
	}
}

func TestChannelGateGradients(t *testing.T) {
	d := NewWithWorkers(2)
	defer d.Close()
	r := newRand(22)
	n, c, h, w := 2, 3, 2, 3
	p := backend.ChannelGateParams{ReLU: true, Residual: true}
	x := tensor(t, d, randSlice(r, n*c*h*w), n, c, h, w)
	s := tensor(t, d, randSlice(r, n*c), n, c)
	z := tensor(t, d, randSlice(r, n*c*h*w), n, c, h, w)
	y := tensor(t, d, nil, n, c, h, w)
	rv := randSlice(r, n*c*h*w)
	yv, _ := Float32s(y)
	must(t, d.ChannelGateForward(p, x, s, z, y))
	yref := values(t, y)
	loss := func() float64 {
		must(t, d.ChannelGateForward(p, x, s, z, y))
		return dot64(yv, rv)
	}
	kinked := func() bool { return signFlipped(yv, yref) }
	dg, ds, dx := tensor(t, d, nil, n, c, h, w), tensor(t, d, nil, n, c), tensor(t, d, nil, n, c, h, w)
	must(t, d.ChannelGateBackward(p, backend.ChannelGateGrads{X: x, S: s, Y: y, DY: tensor(t, d, rv, n, c, h, w), DG: dg, DS: ds}))
	must(t, d.ChannelGateBackwardData(s, dg, backend.Tensor{}, dx))
	assertGrad(t, "gate dx", values(t, dx), fdGrad(t, x, 1e-2, loss, kinked), 2e-3, 1e-2)
	assertGrad(t, "gate ds", values(t, ds), fdGrad(t, s, 1e-2, loss, kinked), 2e-3, 1e-2)
	assertGrad(t, "gate dz", values(t, dg), fdGrad(t, z, 1e-2, loss, kinked), 2e-3, 1e-2)
}

// naiveExcitation is h = relu(p w1^T + b1), s = h w2^T + b2.
func naiveExcitation(n, c, rd int, p, w1, b1, w2, b2 []float32) (h, s []float64) {
	h, s = make([]float64, n*rd), make([]float64, n*c)
	for i := 0; i < n; i++ {
		for j := 0; j < rd; j++ {
			v := float64(b1[j]) + dot64(p[i*c:(i+1)*c], w1[j*c:(j+1)*c])
			h[i*rd+j] = math.Max(v, 0)
		}
		for j := 0; j < c; j++ {
			v := float64(b2[j])
			for k := 0; k < rd; k++ {
				v += h[i*rd+k] * float64(w2[j*rd+k])
			}
			s[i*c+j] = v
		}
	}
	return h, s
}

func TestExcitationMatchesNaiveAndGradients(t *testing.T) {
	d := NewWithWorkers(2)
	defer d.Close()
	r := newRand(23)
	n, c, rd := 3, 6, 4
	pv, w1v, b1v, w2v, b2v := randSlice(r, n*c), randSlice(r, rd*c), randSlice(r, rd), randSlice(r, c*rd), randSlice(r, c)
	p, w1, b1 := tensor(t, d, pv, n, c), tensor(t, d, w1v, rd, c), tensor(t, d, b1v, rd)
	w2, b2 := tensor(t, d, w2v, c, rd), tensor(t, d, b2v, c)
	h, s := tensor(t, d, nil, n, rd), tensor(t, d, nil, n, c)
	ft := backend.ExcitationTensors{P: p, W1: w1, B1: b1, W2: w2, B2: b2, H: h, S: s}
	must(t, d.ExcitationForward(ft))
	wantH, wantS := naiveExcitation(n, c, rd, pv, w1v, b1v, w2v, b2v)
	assertClose(t, "h", values(t, h), wantH, 1e-6, 1e-6)
	assertClose(t, "s", values(t, s), wantS, 1e-6, 1e-6)

	rv := randSlice(r, n*c)
	hv := values(t, h)
	hcur, _ := Float32s(h)
	scur, _ := Float32s(s)
	loss := func() float64 {
		must(t, d.ExcitationForward(ft))
		return dot64(scur, rv)
	}
	kinked := func() bool { return signFlipped(hcur, hv) }
	gr := backend.ExcitationGrads{P: p, W1: w1, W2: w2, H: h, DS: tensor(t, d, rv, n, c), DH: tensor(t, d, nil, n, rd),
		DP: tensor(t, d, nil, n, c), DW1: tensor(t, d, nil, rd, c), DB1: tensor(t, d, nil, rd),
		DW2: tensor(t, d, nil, c, rd), DB2: tensor(t, d, nil, c)}
	must(t, d.ExcitationBackward(gr))
	assertGrad(t, "excitation dp", values(t, gr.DP), fdGrad(t, p, 1e-2, loss, kinked), 2e-3, 1e-2)
	assertGrad(t, "excitation dw1", values(t, gr.DW1), fdGrad(t, w1, 1e-2, loss, kinked), 2e-3, 1e-2)
	assertGrad(t, "excitation db1", values(t, gr.DB1), fdGrad(t, b1, 1e-2, loss, kinked), 2e-3, 1e-2)
	assertGrad(t, "excitation dw2", values(t, gr.DW2), fdGrad(t, w2, 1e-2, loss, kinked), 2e-3, 1e-2)
	assertGrad(t, "excitation db2", values(t, gr.DB2), fdGrad(t, b2, 1e-2, loss, kinked), 2e-3, 1e-2)
}
