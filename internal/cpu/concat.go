package cpu

// Channel concatenation (DenseNet's dense connections, Inception's branches), one input at a time, and the
// scaled residual sum that closes an Inception-ResNet unit. Both are element-wise over (n, c) planes; each
// runs on the calling goroutine (they move a few bytes per element, and the per-layer fork would cost more
// than the copy in the small maps these nets end in).

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

// ScaledResidual implements backend.Device: y = act(Scale*(a + bias[c]) + z), in float32 in that order
// (PyTorch's conv bias, then out * scale + x, then the ReLU).
func (d *Device) ScaledResidual(p backend.ScaledResidualParams, a, bias, z, y backend.Tensor) error {
	g, err := backend.CheckScaledResidual(p, a, bias, z, y)
	v := views{op: "ScaledResidual", err: named(err)}
	av, bv, zv, yv := v.f32("a", a), v.f32("bias", bias), v.f32("z", z), v.f32("y", y)
	if v.err != nil {
		return v.err
	}
	hw := g.H * g.W
	for pl := 0; pl < g.N*g.C; pl++ {
		b := bv[pl%g.C]
		ap, zp, yp := av[pl*hw:(pl+1)*hw], zv[pl*hw:(pl+1)*hw], yv[pl*hw:(pl+1)*hw]
		for i, x := range ap {
			o := float32((x+b)*p.Scale) + zp[i] // the conversion keeps the product its own rounding (no FMA)
			if p.ReLU && !(o > 0) {
				o = max(o, 0) // NaN stays NaN, as in torch.relu
			}
			yp[i] = o
		}
	}
	return nil
}

// ScaledResidualBackward implements backend.Device. Each bias gradient is its channel's sum of g in float64,
// over samples and then positions in order, times Scale. DA may be DY: each element is read before it is
// written.
func (d *Device) ScaledResidualBackward(p backend.ScaledResidualParams, gr backend.ScaledResidualGrads) error {
	g, err := backend.CheckScaledResidualBackward(p, gr)
	v := views{op: "ScaledResidualBackward", err: named(err)}
	yv, dy, da, db, dz := v.f32("Y", gr.Y), v.f32("DY", gr.DY), v.f32("DA", gr.DA), v.f32("DBias", gr.DBias), v.f32("DZ", gr.DZ)
	if v.err != nil {
		return v.err
	}
	hw := g.H * g.W
	for c := 0; c < g.C; c++ {
		var s float64
		for n := 0; n < g.N; n++ {
			pl := n*g.C + c
			yp, dyp := yv[pl*hw:(pl+1)*hw], dy[pl*hw:(pl+1)*hw]
			dap, dzp := da[pl*hw:(pl+1)*hw], dz[pl*hw:(pl+1)*hw]
			for i, gv := range dyp {
				if p.ReLU && !(yp[i] > 0) {
					gv = 0
				}
				s += float64(gv)
				if gr.Accumulate {
					dzp[i] += gv
				} else {
					dzp[i] = gv
				}
				dap[i] = gv * p.Scale
			}
		}
		db[c] = float32(s) * p.Scale
	}
	return nil
}
