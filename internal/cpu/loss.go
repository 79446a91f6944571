package cpu

import (
	"fmt"
	"math"

	"resnet/internal/backend"
)

// ceJob computes softmax cross-entropy for the samples split(n, parts, i).
type ceJob struct {
	n, k, parts int
	logits      []float32
	labels      []int32
	loss        []float32
	dlogits     []float32 // nil when the caller wants the loss only
	scale       float32
}

func (j *ceJob) run(_, i int) {
	lo, hi := split(j.n, j.parts, i)
	for s := lo; s < hi; s++ {
		row := j.logits[s*j.k : (s+1)*j.k]
		m := row[0]
		for _, v := range row {
			if v > m {
				m = v
			}
		}
		var sum float64
		for _, v := range row {
			sum += math.Exp(float64(v - m))
		}
		label := int(j.labels[s])
		// log(sum exp(l - m)) - (l[label] - m): the max shift keeps exp from overflowing.
		j.loss[s] = float32(math.Log(sum) - float64(row[label]-m))
		if j.dlogits == nil {
			continue
		}
		dl := j.dlogits[s*j.k : (s+1)*j.k]
		dl = dl[:len(row)]
		for c, v := range row {
			p := math.Exp(float64(v-m)) / sum
			if c == label {
				p--
			}
			dl[c] = float32(p) * j.scale
		}
	}
}

// SoftmaxCrossEntropy implements backend.Device. dlogits may be left invalid to compute the loss only.
func (d *Device) SoftmaxCrossEntropy(logits, labels, loss, dlogits backend.Tensor, gradScale float32) error {
	const op = "SoftmaxCrossEntropy"
	g, err := backend.CheckSoftmaxCrossEntropy(logits, labels, loss, dlogits)
	v := views{op: op, err: named(err)}
	j := ceJob{n: g.N, k: g.K, scale: gradScale}
	j.logits, j.labels, j.loss = v.f32("logits", logits), v.i32("labels", labels), v.f32("loss", loss)
	j.dlogits = v.optional("dlogits", dlogits)
	if v.err != nil {
		return v.err
	}
	for s, l := range j.labels {
		if l < 0 || int(l) >= j.k {
			return fmt.Errorf("cpu: %s: label %d of sample %d is outside [0, %d)", op, l, s, j.k)
		}
	}
	j.parts = min(j.n, 4*len(d.ws))
	d.jobs.ce = j
	d.pool.run(&d.jobs.ce, j.parts)
	d.jobs.ce = ceJob{}
	return nil
}
