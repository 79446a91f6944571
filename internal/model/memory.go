// This file estimates the memory a network needs, from the same list of tensors Build allocates, before
// anything is allocated.

package model

import (
	"fmt"

	"resnet/internal/backend"
	"resnet/internal/sysmem"
)

// Memory is what a net needs at a batch capacity, in bytes. Sizes saturate at sysmem.Saturated instead of
// overflowing.
type Memory struct {
	// Activations are every activation's value and, where the backward pass needs one, its gradient.
	Activations int64
	// Params are the parameters, their gradients and momentum buffers (running statistics included).
	Params int64
	// Other holds the labels, the per-example losses and the batch-norm layers' saved statistics.
	Other int64
	// Host are the host copies of the logits and losses, kept in host memory whatever the device.
	Host int64
	// Workspace is a rough bound on the scratch of one image's convolution: the patch matrix
	// (Cin*kH*kW x OH*OW) of the largest convolution. A backend holds about one per image in flight.
	Workspace int64
}

// Device is what Build allocates on the device: activations, parameters and the rest.
func (m Memory) Device() int64 { return sysmem.Add(m.Activations, m.Params, m.Other) }

// Need is the estimate by part, with the workspace of images convolutions in flight at once.
func (m Memory) Need(images int) sysmem.Need {
	return sysmem.Need{
		{Name: "activations", Bytes: m.Activations},
		{Name: "parameters", Bytes: m.Params},
		{Name: "workspace", Bytes: sysmem.Mul(m.Workspace, int64(images))},
		{Name: "labels and statistics", Bytes: m.Other},
		{Name: "host copies", Bytes: m.Host, Host: true},
	}
}

// EstimateMemory is what Build(dev, s, batch) allocates, computed from the shapes alone, for a device
// whose 4-D activations are of dtype act (backend.ActivationFormat: F32, or BF16 and F16 at half the
// bytes; the layout does not change the size).
func EstimateMemory(s Spec, batch int, act backend.DType) (Memory, error) {
	return estimate(s, batch, act, false, func() (*graph, error) { return newGraph(s) })
}

// EstimateFullyConvMemory is what BuildFullyConv(base, h, w, batch) allocates for a base net of spec s:
// activations only (of dtype act), the parameters being the base net's.
func EstimateFullyConvMemory(s Spec, h, w, batch int, act backend.DType) (Memory, error) {
	return estimate(s, batch, act, true, func() (*graph, error) { return newFullyConvGraph(s, h, w) })
}

// estimate sums the tensor plan of the graph that build makes, as a net of that batch would allocate it.
func estimate(s Spec, batch int, act backend.DType, shared bool, build func() (*graph, error)) (Memory, error) {
	if batch < 1 {
		return Memory{}, fmt.Errorf("model %s: batch size must be >= 1 (got %d)", s.Name, batch)
	}
	g, err := build()
	if err != nil {
		return Memory{}, err
	}
	n := &Net{Spec: s, Params: g.params, g: g, capacity: batch, shared: shared, estimateAct: act}
	return n.memoryOf(n.tensorPlan()), nil
}

// memoryOf sums a tensor plan, adds the host copies alloc makes and the workspace bound.
func (n *Net) memoryOf(plan []plannedTensor) Memory {
	var m Memory
	shares := map[memoryShare]*int64{shareParams: &m.Params, shareActivations: &m.Activations, shareOther: &m.Other}
	for _, t := range plan {
		b := int64(t.dt.Size())
		for _, d := range t.shape {
			b = sysmem.Mul(b, int64(d))
		}
		*shares[t.share] = sysmem.Add(*shares[t.share], b)
	}
	c := int64(n.capacity)
	m.Host = sysmem.Mul(4, c, int64(n.Spec.NumClasses)+1)
	for _, nd := range n.g.nodes {
		if cv, ok := nd.(*convNode); ok {
			patch := sysmem.Mul(4, int64(cv.in.c/cv.p.GroupCount()), int64(cv.kh), int64(cv.kw), int64(cv.out.h), int64(cv.out.w))
			m.Workspace = max(m.Workspace, patch)
		}
	}
	return m
}

// newFullyConvGraph is the graph of a fully-convolutional net for h x w inputs: inference only, no
// activation gradients.
func newFullyConvGraph(s Spec, h, w int) (*graph, error) {
	g, err := newGraphFor(s, h, w, true)
	if err != nil {
		return nil, err
	}
	for _, a := range g.acts {
		a.needGrad = false
	}
	return g, nil
}
