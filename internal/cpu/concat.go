package cpu

// Channel concatenation (DenseNet's dense connections, Inception's branches), one input at a time, and the
// scaled residual sum that closes an Inception-ResNet unit. The copy runs on the calling goroutine (a
// memmove per plane, which one core does at memory speed); the scaled sum, a few operations per element,
// runs on the workers.

import "resnet/internal/backend"

// CopyChannels implements backend.Device.
func (d *Device) CopyChannels(p backend.ChannelCopyParams, src, dst backend.Tensor) error {
	g, err := backend.CheckCopyChannels(p, src, dst)
	v := views{op: "CopyChannels", err: named(err)}
	s, t := v.f32("src", src), v.f32("dst", dst)
	if v.err != nil {
		return v.err
	}
	hw := g.H * g.W
	for n := 0; n < g.N; n++ {
		from := s[(n*g.SrcC+p.SrcOffset)*hw:][:p.Channels*hw]
		to := t[(n*g.DstC+p.DstOffset)*hw:][:p.Channels*hw]
		if !p.Accumulate {
			copy(to, from)
			continue
		}
		for i, x := range from {
			to[i] += x
		}
	}
	return nil
}

// scaledJob is the state of one scaled-residual call. The forward's piece i covers planes
// split(N*C, parts, i); the backward's covers channels split(C, parts, i), so that each channel's bias
// gradient is summed by one worker in the same order whatever the worker count.
type scaledJob struct {
	backward, accumulate bool
	parts, n, c, hw      int
	p                    backend.ScaledResidualParams
	a, bias, z, y        []float32 // forward
	dy, da, db, dz       []float32 // backward (y too)
}

func (j *scaledJob) run(_, i int) {
	if j.backward {
		lo, hi := split(j.c, j.parts, i)
		for c := lo; c < hi; c++ {
			j.channelGrad(c)
		}
		return
	}
	lo, hi := split(j.n*j.c, j.parts, i)
	hw := j.hw
	for pl := lo; pl < hi; pl++ {
		b := j.bias[pl%j.c]
		ap, zp, yp := j.a[pl*hw:(pl+1)*hw], j.z[pl*hw:(pl+1)*hw], j.y[pl*hw:(pl+1)*hw]
		for k, x := range ap {
			o := float32((x+b)*j.p.Scale) + zp[k] // the conversion keeps the product its own rounding (no FMA)
			if j.p.ReLU && !(o > 0) {
				o = max(o, 0) // NaN stays NaN, as in torch.relu
			}
			yp[k] = o
		}
	}
}

// channelGrad writes channel c's gradients: its bias gradient, the sum of g over samples and then
// positions in float64 times Scale, and DA and DZ over its planes. DA may be DY: each element is read
// before it is written.
func (j *scaledJob) channelGrad(c int) {
	hw := j.hw
	var s float64
	for n := 0; n < j.n; n++ {
		pl := n*j.c + c
		yp, dyp := j.y[pl*hw:(pl+1)*hw], j.dy[pl*hw:(pl+1)*hw]
		dap, dzp := j.da[pl*hw:(pl+1)*hw], j.dz[pl*hw:(pl+1)*hw]
		for k, gv := range dyp {
			if j.p.ReLU && !(yp[k] > 0) {
				gv = 0
			}
			s += float64(gv)
			if j.accumulate {
				dzp[k] += gv
			} else {
				dzp[k] = gv
			}
			dap[k] = gv * j.p.Scale
		}
	}
	j.db[c] = float32(s) * j.p.Scale
}

// ScaledResidual implements backend.Device: y = act(Scale*(a + bias[c]) + z), in float32 in that order
// (PyTorch's conv bias, then out * scale + x, then the ReLU), planes split over the workers.
func (d *Device) ScaledResidual(p backend.ScaledResidualParams, a, bias, z, y backend.Tensor) error {
	g, err := backend.CheckScaledResidual(p, a, bias, z, y)
	v := views{op: "ScaledResidual", err: named(err)}
	j := scaledJob{n: g.N, c: g.C, hw: g.H * g.W, p: p}
	j.a, j.bias, j.z, j.y = v.f32("a", a), v.f32("bias", bias), v.f32("z", z), v.f32("y", y)
	if v.err != nil {
		return v.err
	}
	j.parts = d.planeParts(g.N * g.C)
	d.runScaled(j)
	return nil
}

// ScaledResidualBackward implements backend.Device, channels split over the workers.
func (d *Device) ScaledResidualBackward(p backend.ScaledResidualParams, gr backend.ScaledResidualGrads) error {
	g, err := backend.CheckScaledResidualBackward(p, gr)
	v := views{op: "ScaledResidualBackward", err: named(err)}
	j := scaledJob{backward: true, accumulate: gr.Accumulate, n: g.N, c: g.C, hw: g.H * g.W, p: p}
	j.y, j.dy, j.da, j.db, j.dz = v.f32("Y", gr.Y), v.f32("DY", gr.DY), v.f32("DA", gr.DA), v.f32("DBias", gr.DBias), v.f32("DZ", gr.DZ)
	if v.err != nil {
		return v.err
	}
	j.parts = d.planeParts(g.C)
	d.runScaled(j)
	return nil
}

// runScaled runs a scaled-residual job on the workers.
func (d *Device) runScaled(j scaledJob) {
	d.jobs.scaled = j
	d.pool.run(&d.jobs.scaled, j.parts)
	d.jobs.scaled = scaledJob{}
}
