package cpu

import (
	"fmt"

	"resnet/internal/backend"
	"resnet/internal/finite"
)

// findJob scans one tensor per piece, so the pieces of a step's many tensors spread over the workers;
// each piece writes only its own flag, and the answer, the first flagged tensor, does not depend on which
// worker scanned what.
type findJob struct {
	vals        [][]float32
	nonNegative []bool // nil: none must be non-negative
	bad         []bool
}

func (j *findJob) run(_, i int) {
	v := j.vals[i]
	j.bad[i] = finite.FirstBad(v, j.nonNegative != nil && j.nonNegative[i]) < len(v)
}

// FindNonFinite implements backend.Device. The views and flags live in the device and are reused, so a
// training step's check allocates nothing.
func (d *Device) FindNonFinite(ts []backend.Tensor, nonNegative []bool) (int, error) {
	if err := backend.CheckFindNonFinite(ts, nonNegative); err != nil {
		return -1, named(err)
	}
	j := &d.jobs.find
	j.vals, j.bad = j.vals[:0], j.bad[:0]
	for i, t := range ts {
		v := views{op: "FindNonFinite"}
		j.vals = append(j.vals, v.f32("tensor", t))
		if v.err != nil {
			j.vals = j.vals[:0]
			return -1, fmt.Errorf("%w (ts[%d])", v.err, i)
		}
		j.bad = append(j.bad, false)
	}
	j.nonNegative = nonNegative
	d.pool.run(j, len(ts))
	j.nonNegative = nil
	first := -1
	for i, b := range j.bad {
		if b {
			first = i
			break
		}
	}
	clear(j.vals) // keep no reference to the tensors' storage
	return first, nil
}
