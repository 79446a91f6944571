package cpu

// The residual add that closes a pre-activation unit, y = a + shortcut(z), and its backward. Both are
// element-wise per (sample, channel) plane, so pieces of planes can run on any worker in any order.

import "resnet/internal/backend"

// residualJob is the state of one residual call; piece i covers planes [split(planes, parts, i)) of the
// output (forward) or of z (backward).
type residualJob struct {
	backward, accumulate bool
	parts                int
	c, h, w              int // the output's channels and plane
	sc                   shortcut
	a, z, y              []float32 // forward
	dy, dz               []float32 // backward
}

func newResidualJob(g backend.BatchNormGeometry, parts int) residualJob {
	return residualJob{parts: parts, c: g.C, h: g.H, w: g.W,
		sc: shortcut{c: g.ZC, h: g.H * g.ZStride, w: g.W * g.ZStride, off: g.ZOff(), stride: g.ZStride}}
}

func (j *residualJob) run(_, i int) {
	if j.backward {
		planes := len(j.dz) / (j.sc.h * j.sc.w)
		lo, hi := split(planes, j.parts, i)
		for p := lo; p < hi; p++ {
			j.shortcutGrad(p/j.sc.c, p%j.sc.c)
		}
		return
	}
	hw := j.h * j.w
	lo, hi := split(len(j.y)/hw, j.parts, i)
	for p := lo; p < hi; p++ {
		n, c := p/j.c, p%j.c
		a, y := j.a[p*hw:(p+1)*hw], j.y[p*hw:(p+1)*hw]
		zc := c - j.sc.off
		if zc < 0 || zc >= j.sc.c {
			copy(y, a) // a zero-padded channel of an option-A shortcut
			continue
		}
		zp := j.z[(n*j.sc.c+zc)*j.sc.h*j.sc.w:][:j.sc.h*j.sc.w]
		if j.sc.stride == 1 {
			for k, v := range a {
				y[k] = v + zp[k]
			}
			continue
		}
		for r := 0; r < j.h; r++ {
			zr := zp[r*j.sc.stride*j.sc.w:]
			for q := 0; q < j.w; q++ {
				y[r*j.w+q] = a[r*j.w+q] + zr[q*j.sc.stride]
			}
		}
	}
}

// shortcutGrad writes (or adds) the gradient of plane (n, zc) of z: the output gradient at the positions
// the shortcut reads, 0 elsewhere.
func (j *residualJob) shortcutGrad(n, zc int) {
	sc, hw := j.sc, j.h*j.w
	dz := j.dz[(n*sc.c+zc)*sc.h*sc.w:][:sc.h*sc.w]
	c := zc + sc.off
	dy := j.dy[(n*j.c+c)*hw:][:hw]
	if sc.stride == 1 {
		if j.accumulate {
			for k, g := range dy {
				dz[k] += g
			}
		} else {
			copy(dz, dy)
		}
		return
	}
	if !j.accumulate {
		clear(dz)
	}
	for r := 0; r < j.h; r++ {
		zr := dz[r*sc.stride*sc.w:]
		for q := 0; q < j.w; q++ {
			zr[q*sc.stride] += dy[r*j.w+q]
		}
	}
}

// ResidualAdd implements backend.Device.
func (d *Device) ResidualAdd(a, z, y backend.Tensor) error {
	g, err := backend.CheckResidualAdd(a, z, y)
	v := views{op: "ResidualAdd", err: named(err)}
	j := newResidualJob(g, d.planeParts(g.N*g.C))
	j.a, j.z, j.y = v.f32("a", a), v.f32("z", z), v.f32("y", y)
	if v.err != nil || g.XLen() == 0 {
		return v.err
	}
	d.jobs.residual = j
	d.pool.run(&d.jobs.residual, j.parts)
	d.jobs.residual = residualJob{}
	return nil
}

// ResidualAddBackward implements backend.Device.
func (d *Device) ResidualAddBackward(dy, dz backend.Tensor, accumulate bool) error {
	g, err := backend.CheckResidualAddBackward(dy, dz)
	v := views{op: "ResidualAddBackward", err: named(err)}
	j := newResidualJob(g, d.planeParts(g.N*g.ZC))
	j.backward, j.accumulate = true, accumulate
	j.dy, j.dz = v.f32("dy", dy), v.f32("dz", dz)
	if v.err != nil || g.ZLen() == 0 {
		return v.err
	}
	d.jobs.residual = j
	d.pool.run(&d.jobs.residual, j.parts)
	d.jobs.residual = residualJob{}
	return nil
}
