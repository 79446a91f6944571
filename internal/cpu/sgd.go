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
	lr, mom, wd := j.p.LR, j.p.Momentum, j.wd
	if j.buf == nil {
		for k, p := range param {
			param[k] = p - lr*(grad[k]+wd*p)
		}
		return
	}
	buf := j.buf[lo:hi]
	buf = buf[:len(param)]
	for k, p := range param {
		g := grad[k] + wd*p
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

// SGDStep implements backend.Device with PyTorch's update (dampening 0): g = grad + wd*p;
// buf = momentum*buf + g; g = nesterov ? g + momentum*buf : buf; p -= lr*g. Buf may be left invalid when
// Momentum is 0. All slots are validated before any parameter changes.
func (d *Device) SGDStep(p backend.SGDParams, slots []backend.SGDSlot) error {
	const op = "SGDStep"
	for i, s := range slots {
		if err := checkSlot(op, p, i, s); err != nil {
			return err
		}
	}
	for _, s := range slots {
		j := sgdJob{p: p, wd: s.WeightDecay}
		j.param, _ = f32View(op, "Param", s.Param)
		j.grad, _ = f32View(op, "Grad", s.Grad)
		if s.Buf.Valid() {
			j.buf, _ = f32View(op, "Buf", s.Buf)
		}
		d.jobs.sgd = j
		d.pool.run(&d.jobs.sgd, (len(j.param)+sgdChunk-1)/sgdChunk)
	}
	d.jobs.sgd = sgdJob{}
	return nil
}

// checkSlot validates one SGD slot; slot i is named in the error.
func checkSlot(op string, p backend.SGDParams, i int, s backend.SGDSlot) error {
	err := func() error {
		if _, err := f32View(op, "Param", s.Param); err != nil {
			return err
		}
		if _, err := shaped(op, "Grad", s.Grad, s.Param.Shape...); err != nil {
			return err
		}
		if !s.Buf.Valid() {
			if p.Momentum != 0 {
				return fmt.Errorf("cpu: %s: Buf is not allocated but Momentum is %v", op, p.Momentum)
			}
			return nil
		}
		_, err := shaped(op, "Buf", s.Buf, s.Param.Shape...)
		return err
	}()
	if err != nil {
		return fmt.Errorf("%w (slot %d)", err, i)
	}
	return nil
}
