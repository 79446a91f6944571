// This file tells, during the backward pass, which part of the gradient store is final: a data-parallel
// trainer starts summing those gradients over its ranks while backward goes on with the layers below, as
// PyTorch's DistributedDataParallel launches its bucket all-reduces.

package model

import (
	"slices"
	"sort"
)

// readyOffsets is, for each node, the offset into the gradient store from which every gradient is final
// once Backward has run that node (it runs them last to first): the parameters there are running
// statistics, which have none, or parameters whose every writer has run. It is nil when a trainable
// parameter is not known to be written by any node, so that no part can be said final before the end.
func (n *Net) readyOffsets() (ready []int, total int) {
	lastWriter := map[*Param]int{} // the lowest node index writing p: the last to run in Backward
	for i, nd := range n.g.nodes {
		for _, p := range nd.trainables() {
			if _, seen := lastWriter[p]; !seen && p != nil {
				lastWriter[p] = i
			}
		}
	}
	byOffset := append([]*Param(nil), n.Params...)
	sort.Slice(byOffset, func(i, j int) bool { return byOffset[i].offset < byOffset[j].offset })
	done := map[*Param]bool{}
	for _, p := range byOffset {
		if _, ok := lastWriter[p]; !ok {
			if p.Kind.Trainable() {
				return nil, 0
			}
			done[p] = true
		}
	}
	for _, p := range n.Params {
		total += p.Shape.Numel()
	}
	ready = make([]int, len(n.g.nodes))
	k := len(byOffset) // byOffset[k:] are final
	for i := len(n.g.nodes) - 1; i >= 0; i-- {
		for _, p := range n.g.nodes[i].trainables() {
			if lastWriter[p] == i {
				done[p] = true
			}
		}
		for k > 0 && done[byOffset[k-1]] {
			k--
		}
		ready[i] = total
		if k < len(byOffset) {
			ready[i] = byOffset[k].offset
		}
	}
	return ready, total
}

// ReadyPoints are the offsets Backward reports to OnGradientsReady's function, in the order it reports
// them (decreasing, the last 0): the same for every pass over the net. Nil for a net whose layers cannot
// be mapped to their parameters.
func (n *Net) ReadyPoints() []int {
	offsets, last := n.readyOffsets()
	var points []int
	for _, from := range slices.Backward(offsets) {
		if from < last {
			points = append(points, from)
			last = from
		}
	}
	return points
}

// OnGradientsReady makes Backward call ready(from) at each of ReadyPoints, as soon as the layers run so
// far have completed the gradients at [from, end), which then do not change until the next Backward.
// ready's error ends Backward. It reports false, and sets nothing, for a net whose layers it cannot map to
// their parameters; nil removes the function.
func (n *Net) OnGradientsReady(ready func(from int) error) bool {
	if ready == nil {
		n.gradReady, n.readyFrom = nil, nil
		return true
	}
	offsets, _ := n.readyOffsets()
	if offsets == nil {
		return false
	}
	n.gradReady, n.readyFrom = ready, offsets
	return true
}
