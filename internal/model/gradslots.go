package model

import (
	"slices"

	"resnet/internal/backend"
)

// Activation gradients are needed only in the backward pass, and each only between the backward of its
// last reader and the backward of the node that made the activation. Activations whose spans do not
// overlap share one gradient buffer (a slot), so the gradients take about as much memory as the few of
// them alive at once rather than as much as all the activations. Every backward writes its input's
// gradient in full before anything reads it (the first writer of a pass overwrites; later writers add),
// so what a slot held before is never seen.

// gradSlot is one gradient buffer: its size per example, its format, and the tensor alloc makes.
type gradSlot struct {
	perSample int
	flat      bool
	t         backend.Tensor
}

// separateGradients gives every activation gradient storage of its own; tests use it as the reference
// the shared slots must match bit for bit.
var separateGradients = false

// gradRoot is the activation whose gradient storage a shares (a itself unless gradOf says otherwise).
func gradRoot(a *act) *act {
	for a.gradOf != nil {
		a = a.gradOf
	}
	return a
}

// gradientSlots assigns every activation that owns gradient storage (needGrad, no gradOf) to a slot. An
// activation's gradient is in use from the backward of the last node that refers to it to the backward
// of the first one (the logits' from the loss, which comes after every node); slots are handed out in
// backward order, each free slot of the same format that is large enough, else the largest one, else a
// new one.
func (g *graph) gradientSlots() (slots []*gradSlot, slotOf map[*act]*gradSlot) {
	slotOf = make(map[*act]*gradSlot)
	first, last := make(map[*act]int), make(map[*act]int) // node indices, in forward order
	touch := func(a *act, i int) {
		if a == nil || !a.needGrad {
			return
		}
		r := gradRoot(a)
		if _, ok := first[r]; !ok {
			first[r] = i
		}
		last[r] = max(last[r], i)
	}
	for i, nd := range g.nodes {
		for _, a := range nd.acts() {
			touch(a, i)
		}
	}
	touch(g.logits, len(g.nodes))
	var roots []*act
	for _, a := range g.acts {
		if a.needGrad && a.gradOf == nil {
			if _, ok := last[a]; !ok { // read by no node: alive for the whole pass
				first[a], last[a] = 0, len(g.nodes)
			}
			roots = append(roots, a)
		}
	}
	if separateGradients {
		for _, a := range roots {
			s := &gradSlot{perSample: a.c * a.h * a.w, flat: a.flat}
			slots = append(slots, s)
			slotOf[a] = s
		}
		return slots, slotOf
	}
	// Backward order: the activation used last in the forward pass gets its slot first.
	slices.SortStableFunc(roots, func(a, b *act) int { return last[b] - last[a] })
	var busy, free []*gradSlot
	busyUntil := make(map[*gradSlot]int) // the first node of the slot's current tenant
	for _, a := range roots {
		// Slots whose tenant's span ended above this activation's last node are free again.
		kept := busy[:0]
		for _, s := range busy {
			if busyUntil[s] > last[a] {
				free = append(free, s)
			} else {
				kept = append(kept, s)
			}
		}
		busy = kept
		s := takeSlot(&free, a)
		if s == nil {
			s = &gradSlot{flat: a.flat}
			slots = append(slots, s)
		}
		s.perSample = max(s.perSample, a.c*a.h*a.w)
		busy = append(busy, s)
		busyUntil[s] = first[a]
		slotOf[a] = s
	}
	return slots, slotOf
}

// takeSlot removes from free and returns the slot for a: the smallest of a's format that holds it, else
// the largest of its format (which grows), else nil.
func takeSlot(free *[]*gradSlot, a *act) *gradSlot {
	need, best := a.c*a.h*a.w, -1
	for i, s := range *free {
		if s.flat != a.flat {
			continue
		}
		if best < 0 {
			best = i
			continue
		}
		b := (*free)[best]
		switch fits, bestFits := s.perSample >= need, b.perSample >= need; {
		case fits && (!bestFits || s.perSample < b.perSample):
			best = i
		case !fits && !bestFits && s.perSample > b.perSample:
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	s := (*free)[best]
	*free = slices.Delete(*free, best, best+1)
	return s
}
