package cpu

// Inverted dropout, forward and backward: each element is kept or dropped as backend.DropoutMask draws it
// and kept ones are scaled by 1/(1-P). Element-wise, so pieces of the tensor can run on any worker.

import "resnet/internal/backend"

// dropoutJob applies a mask to in, writing out; piece i covers elements [split(len(in), parts, i)).
type dropoutJob struct {
	m       backend.DropoutMask
	parts   int
	in, out []float32
}

func (j *dropoutJob) run(_, i int) {
	lo, hi := split(len(j.in), j.parts, i)
	for e := lo; e < hi; e++ {
		if j.m.Keeps(uint64(e)) {
			j.out[e] = j.in[e] * j.m.Scale
		} else {
			j.out[e] = 0
		}
	}
}

// DropoutForward implements backend.Device.
func (d *Device) DropoutForward(p backend.DropoutParams, x, y backend.Tensor) error {
	g, err := backend.CheckDropoutForward(p, x, y)
	return d.dropout("DropoutForward", p, g, err, "x", x, "y", y)
}

// DropoutBackward implements backend.Device.
func (d *Device) DropoutBackward(p backend.DropoutParams, dy, dx backend.Tensor) error {
	g, err := backend.CheckDropoutBackward(p, dy, dx)
	return d.dropout("DropoutBackward", p, g, err, "dy", dy, "dx", dx)
}

// dropout runs the checked op: the CPU holds f32 NCHW, so an element's flat index is its NCHW index.
func (d *Device) dropout(op string, p backend.DropoutParams, g backend.DropoutGeometry, checked error,
	inName string, in backend.Tensor, outName string, out backend.Tensor) error {
	v := views{op: op, err: named(checked)}
	j := dropoutJob{m: p.Mask(), parts: d.planeParts(g.N * g.C), in: v.f32(inName, in), out: v.f32(outName, out)}
	if v.err != nil || g.Len() == 0 {
		return v.err
	}
	d.jobs.dropout = j
	d.pool.run(&d.jobs.dropout, j.parts)
	d.jobs.dropout = dropoutJob{}
	return nil
}
