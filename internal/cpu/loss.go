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
	targets     []float32 // soft targets (N, K), instead of labels
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
		if j.targets != nil {
			j.soft(s, row, m, sum)
			continue
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

// soft is sample s against its soft target t: loss -sum_c t_c log softmax_c, gradient
// (sum_c t_c) softmax - t, in double from the row's maximum m and sum of exp(l - m).
func (j *ceJob) soft(s int, row []float32, m float32, sum float64) {
	t := j.targets[s*j.k : (s+1)*j.k]
	lse := math.Log(sum)
	var loss, mass float64
	for c, v := range row {
		tc := float64(t[c])
		if tc != 0 {
			loss += tc * (lse - float64(v-m))
		}
		mass += tc
	}
	j.loss[s] = float32(loss)
	if j.dlogits == nil {
		return
	}
	dl := j.dlogits[s*j.k : (s+1)*j.k]
	for c, v := range row {
		dl[c] = float32(mass*math.Exp(float64(v-m))/sum-float64(t[c])) * j.scale
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
	d.runCE(j)
	return nil
}

// runCE runs a cross-entropy job on the workers.
func (d *Device) runCE(j ceJob) {
	j.parts = min(j.n, 4*len(d.ws))
	d.jobs.ce = j
	d.pool.run(&d.jobs.ce, j.parts)
	d.jobs.ce = ceJob{}
}

// SoftTargetCrossEntropy implements backend.Device. dlogits may be left invalid to compute the loss only.
func (d *Device) SoftTargetCrossEntropy(logits, targets, loss, dlogits backend.Tensor, gradScale float32) error {
	g, err := backend.CheckSoftTargetCrossEntropy(logits, targets, loss, dlogits)
	v := views{op: "SoftTargetCrossEntropy", err: named(err)}
	j := ceJob{n: g.N, k: g.K, scale: gradScale}
	j.logits, j.targets, j.loss = v.f32("logits", logits), v.f32("targets", targets), v.f32("loss", loss)
	j.dlogits = v.optional("dlogits", dlogits)
	if v.err != nil {
		return v.err
	}
	d.runCE(j)
	return nil
}
