package cpu

import (
	"fmt"

	"resnet/internal/backend"
)

// sgdChunk is the number of parameters one piece of an SGD step updates.
const sgdChunk = 1 << 16

// sgdJob updates one parameter tensor, chunk by chunk.
type sgdJob struct {
	p                backend.SGDParams
	wd               float32
	param, grad, buf []float32 // buf is nil without momentum
}

func (j *sgdJob) run(_, i int) {
	lo, hi := i*sgdChunk, min((i+1)*sgdChunk, len(j.param))
	param, grad := j.param[lo:hi], j.grad[lo:hi]
	grad = grad[:len(param)]
	lr, mom, wd, gs := j.p.LR, j.p.Momentum, j.wd, j.p.Unscale()
	if j.buf == nil {
		for k, p := range param {
			// Each product is rounded on its own (float32(...) forbids fusing it into an FMA), as the CUDA
			// kernel rounds it, and as PyTorch stores the unscaled gradient before the step reads it.
			param[k] = p - lr*(float32(grad[k]*gs)+wd*p)
		}
		return
	}
	buf := j.buf[lo:hi]
	buf = buf[:len(param)]
	for k, p := range param {
		g := float32(grad[k]*gs) + wd*p
		b := mom*buf[k] + g
		buf[k] = b
		if j.p.Nesterov {
			g += mom * b
		} else {
			g = b
		}
		param[k] = p - lr*g
	}
}

// SGDStep implements backend.Device with PyTorch's update (dampening 0): g = grad*GradScale + wd*p;
// buf = momentum*buf + g; g = nesterov ? g + momentum*buf : buf; p -= lr*g. Buf may be left invalid when
// Momentum is 0. All slots are validated before any parameter changes.
func (d *Device) SGDStep(p backend.SGDParams, slots []backend.SGDSlot) error {
	if err := backend.CheckSGDStep(p, slots); err != nil {
		return named(err)
	}
	for i, s := range slots {
		if _, err := slotJob(p, i, s); err != nil {
			return err
		}
	}
	for i, s := range slots {
		d.jobs.sgd, _ = slotJob(p, i, s)
		d.pool.run(&d.jobs.sgd, (len(d.jobs.sgd.param)+sgdChunk-1)/sgdChunk)
	}
	d.jobs.sgd = sgdJob{}
	return nil
}

// slotJob returns the job that updates slot i, or the error that says why its tensors are not this
// device's.
func slotJob(p backend.SGDParams, i int, s backend.SGDSlot) (sgdJob, error) {
	v := views{op: "SGDStep"}
	j := sgdJob{p: p, wd: s.WeightDecay, param: v.f32("Param", s.Param), grad: v.f32("Grad", s.Grad),
		buf: v.optional("Buf", s.Buf)}
	if v.err != nil {
		return j, fmt.Errorf("%w (slot %d)", v.err, i)
	}
	return j, nil
}
