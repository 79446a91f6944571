//go:build cuda

package cuda

// CUDA graphs (backend.Grapher, docs/decisions/0007-cuda-graphs.md): the device work of a function, a
// training step's forward, loss and backward, recorded once per key by stream capture on the compute
// stream and replayed with one cuGraphLaunch.
//
// The memory a graph uses: its kernels keep the addresses they were recorded with, so no block a live
// graph may use can go back to the allocator's cache, where a later allocation would get it and every
// replay would overwrite it. Every block handed out gets a number, and a graph can only use blocks
// handed out before its capture ended; so a block numbered at most the end of a live graph's capture
// waits in held, when it is released, until no such graph is left. Blocks handed out later were in no
// capture and go back to the cache as before: the eager ops between replays (uploads, the SGD step,
// evaluation) keep reusing their scratch. During a capture, the scratch its ops release is reused by its
// later ops (a graph runs its ops in the order they were recorded, as the stream would have) and then
// belongs to the graph. A capture cannot allocate from the driver (cuMemAlloc is no stream operation, so
// a replay would not repeat it), so before it starts the cache is topped up with the scratch its warm-up
// used.

import (
	"fmt"
	"reflect"
	"slices"

	"resnet/internal/backend"
)

var _ backend.Grapher = (*Device)(nil)

// maxGraphs is how many keys a device keeps, warmed up or recorded; a new key displaces the least
// recently used. Training needs two or three (the full batch, an epoch's smaller last batch, a new loss
// scale), and each recorded graph holds its scratch memory.
const maxGraphs = 8

// graphState is the device's part: its graphs and the memory they hold. d.opMu guards it.
type graphState struct {
	graphs    []*recordedGraph // least recently used first
	graphIDs  uint64           // the last id given to the gpu side
	capturing *capture         // the capture in progress
	warming   *recordedGraph   // the graph whose warm-up is running
	opScratch map[int64]int    // during a warm-up: scratch blocks per size class the current op holds

	handed   map[uint64]uint64 // live blocks: the number each was handed out with
	handouts uint64            // blocks handed out so far
	heldUpTo uint64            // a live graph may use the blocks numbered up to this
	held     []numberedBlock   // released blocks a live graph may still use
}

// recordedGraph is one key's graph.
type recordedGraph struct {
	key backend.GraphKey
	id  uint64 // the gpu side's graph; 0 until recorded
	// capEnd is the hand-out count when its capture ended: it may use blocks numbered up to it.
	capEnd uint64
	// fresh are the filter copies the graph converts, which hold the current weights after a launch.
	fresh []*filterCopy
	// scratch is the most scratch blocks of each size class that one op of the warm-up held.
	scratch map[int64]int
}

// capture is a capture in progress.
type capture struct {
	g    *recordedGraph
	free map[int64][]numberedBlock // scratch its ops released, for its later ops
	err  error                     // the first command it refused
}

type numberedBlock struct {
	blk block
	n   uint64
}

// Graph implements backend.Grapher.
func (d *Device) Graph(key backend.GraphKey, fn func() error) error {
	if !d.opt.Graphs {
		return fn()
	}
	const op = "Graph"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	switch {
	case d.capturing != nil || d.warming != nil:
		d.end()
		return fmt.Errorf("cuda: %s: called from the function of another Graph call; graphs do not nest", op)
	case key.Owner == nil || !reflect.TypeOf(key.Owner).Comparable():
		d.end()
		return fmt.Errorf("cuda: %s: the key's Owner (%T) must be a comparable value such as a pointer", op, key.Owner)
	}
	i := slices.IndexFunc(d.graphs, func(g *recordedGraph) bool { return g.key == key })
	if i < 0 {
		return d.warmUp(key, fn)
	}
	g := d.graphs[i]
	d.graphs = append(slices.Delete(d.graphs, i, i+1), g) // now the most recently used
	if g.id == 0 {
		return d.record(g, fn)
	}
	d.launchGraph(g)
	d.end()
	return nil
}

// warmUp runs fn eagerly for a new key, counting the scratch its ops take. d.opMu is held; warmUp
// releases it.
func (d *Device) warmUp(key backend.GraphKey, fn func() error) error {
	g := &recordedGraph{key: key, scratch: map[int64]int{}}
	var err error
	if len(d.graphs) == maxGraphs {
		err = d.removeGraph(d.graphs[0])
	}
	d.graphs = append(d.graphs, g)
	d.warming, d.opScratch = g, map[int64]int{}
	d.end()
	if err == nil {
		err = fn()
	}
	d.opMu.Lock()
	d.warming, d.opScratch = nil, nil
	if err != nil {
		// A failed warm-up does not count: the next call warms up again.
		d.graphs = slices.DeleteFunc(d.graphs, func(o *recordedGraph) bool { return o == g })
	}
	d.opMu.Unlock()
	return err
}

// countScratch counts a scratch block of the op running during a warm-up.
func (d *Device) countScratch(b block) {
	if d.opScratch != nil && b.class != 0 {
		d.opScratch[b.class]++
	}
}

// noteScratch, as an op ends during a warm-up, keeps its scratch counts where they are the most so far.
func (d *Device) noteScratch() {
	for class, n := range d.opScratch {
		d.warming.scratch[class] = max(d.warming.scratch[class], n)
		delete(d.opScratch, class)
	}
}

// record records fn's device work into graph g and launches it. d.opMu is held; record releases it.
func (d *Device) record(g *recordedGraph, fn func() error) error {
	const op = "Graph"
	for class, n := range g.scratch {
		if err := d.mem.reserve(class, n); err != nil {
			d.end()
			return fmt.Errorf("cuda: %s: reserving the scratch of a graph: %w", op, err)
		}
	}
	// The replays follow SGD steps that change the weights, so the graph must convert every weight it
	// reads: no copy counts as current while it is recorded.
	d.staleFilters()
	if err := d.call(&cmd{kind: cmdGraphCtl, op: op, fn: func(gp gpu) error { return gp.graphBegin() }}); err != nil {
		d.end()
		return err
	}
	c := &capture{g: g, free: map[int64][]numberedBlock{}}
	d.capturing = c
	d.end()

	err := fn()

	d.opMu.Lock()
	d.capturing = nil
	if c.err != nil {
		err = c.err // what fn may have returned is a consequence
	}
	if err == nil {
		err = d.takeAsyncErr() // a recorded command failed
	}
	d.graphIDs++
	id, keep := d.graphIDs, err == nil
	if e := d.call(&cmd{kind: cmdGraphCtl, op: op, fn: func(gp gpu) error { return gp.graphEnd(id, keep) }}); e != nil && err == nil {
		err = e
	}
	if err != nil {
		// Nothing recorded ran: the converted filters are not current, and the scratch is the cache's again.
		d.staleFilters()
		for _, list := range c.free {
			for _, b := range list {
				d.mem.put(b.blk.ptr, b.blk.class)
			}
		}
		d.graphs = slices.DeleteFunc(d.graphs, func(o *recordedGraph) bool { return o == g })
		d.end()
		return fmt.Errorf("%w (while recording a CUDA graph of the step, which did not run)", err)
	}
	g.id, g.capEnd = id, d.handouts
	d.heldUpTo = max(d.heldUpTo, g.capEnd)
	for _, list := range c.free {
		d.held = append(d.held, list...)
	}
	for b := range d.filterBufs {
		for _, f := range b.filters {
			if f.fresh {
				g.fresh = append(g.fresh, f)
			}
		}
	}
	d.launchGraph(g)
	d.end()
	return nil
}

// launchGraph queues a launch of recorded graph g.
func (d *Device) launchGraph(g *recordedGraph) {
	d.enqueue(&cmd{kind: cmdGraph, op: "Graph", graph: g.id})
	d.countLib(libGraphLaunch)
	for _, f := range g.fresh {
		f.fresh = true
	}
}

// staleFilters marks every converted filter copy stale.
func (d *Device) staleFilters() {
	for b := range d.filterBufs {
		for _, f := range b.filters {
			f.fresh = false
		}
	}
}

// DropGraphs implements backend.Grapher. An error destroying a graph is reported by the next call.
func (d *Device) DropGraphs(owner any) {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	if d.closed {
		return
	}
	for _, g := range slices.Clone(d.graphs) {
		busy := g == d.warming || (d.capturing != nil && g == d.capturing.g)
		if g.key.Owner == owner && !busy {
			if err := d.removeGraph(g); err != nil {
				d.setAsyncErr("DropGraphs", err)
			}
		}
	}
}

// removeGraph forgets g, destroys its graph and returns to the cache the blocks no live graph may use.
// d.opMu is held.
func (d *Device) removeGraph(g *recordedGraph) error {
	d.graphs = slices.DeleteFunc(d.graphs, func(o *recordedGraph) bool { return o == g })
	if g.id == 0 {
		return nil
	}
	id := g.id
	err := d.call(&cmd{kind: cmdGraphCtl, op: "Graph", fn: func(gp gpu) error { return gp.graphDestroy(id) }})
	d.heldUpTo = 0
	for _, o := range d.graphs {
		d.heldUpTo = max(d.heldUpTo, o.capEnd)
	}
	kept := d.held[:0]
	for _, b := range d.held {
		if b.n <= d.heldUpTo {
			kept = append(kept, b)
		} else {
			d.mem.put(b.blk.ptr, b.blk.class) // a launch still queued runs before any new user
		}
	}
	d.held = kept
	return err
}

// destroyGraphs removes every graph (Close). d.opMu is held.
func (d *Device) destroyGraphs() error {
	var err error
	for len(d.graphs) > 0 {
		if e := d.removeGraph(d.graphs[0]); e != nil && err == nil {
			err = e
		}
	}
	return err
}

// handOut numbers a block the allocator handed out.
func (d *Device) handOut(b block) block {
	if b.class == 0 {
		return b
	}
	if d.handed == nil {
		d.handed = map[uint64]uint64{}
	}
	d.handouts++
	d.handed[b.ptr] = d.handouts
	return b
}

// release gives a block back: to the graphs that may use it, to the capture in progress, or to the cache.
func (d *Device) release(b block) {
	if b.class == 0 {
		return
	}
	n := d.handed[b.ptr]
	delete(d.handed, b.ptr)
	switch {
	case n != 0 && n <= d.heldUpTo:
		d.held = append(d.held, numberedBlock{b, n})
	case d.capturing != nil:
		d.capturing.free[b.class] = append(d.capturing.free[b.class], numberedBlock{b, n})
	default:
		d.mem.put(b.ptr, b.class)
	}
}

// captureAlloc is alloc while a graph is being recorded: a block the capture released, else one from
// the cache, never one from the driver.
func (d *Device) captureAlloc(op string, bytes int64) (block, error) {
	c := d.capturing
	class := sizeClass(bytes)
	if list := c.free[class]; len(list) > 0 {
		c.free[class] = list[:len(list)-1]
		return d.handOut(list[len(list)-1].blk), nil
	}
	if p, class, ok := d.mem.cached(bytes); ok {
		return d.handOut(block{p, class}), nil
	}
	err := fmt.Errorf("cuda: %s: needs %d bytes of new device memory while a CUDA graph is recorded, which cannot "+
		"allocate (a replay would not repeat cuMemAlloc); the recorded ops must allocate what they did in the warm-up", op, class)
	if c.err == nil {
		c.err = err
	}
	return block{}, err
}

// refused is the error of a command that cannot be recorded into a graph, or nil for one that can. The
// first one is kept: the capture fails with it.
func (d *Device) refused(c *cmd) error {
	var why string
	switch c.kind {
	case cmdLaunch, cmdMemset, cmdCopyDtoD, cmdConv, cmdGemm, cmdGraphCtl:
		return nil
	case cmdUpload, cmdCopyHtoD:
		why = "copies from host memory, which a replay would copy again whatever it then holds"
	case cmdDownload, cmdSync, cmdWaitSlot:
		why = "waits for the device"
	case cmdGraph:
		why = "launches another graph"
	default:
		why = "does setup work (allocation, an algorithm search) that waits for the device"
	}
	err := fmt.Errorf("cuda: %s %s, which a CUDA graph cannot record: do it outside the function given to Graph", c.op, why)
	if d.capturing.err == nil {
		d.capturing.err = err
	}
	return err
}

// notRecording is the error of an op that must not be part of a graph, while one is recorded.
func (d *Device) notRecording(op, why string) error {
	if d.capturing == nil {
		return nil
	}
	err := fmt.Errorf("cuda: %s %s, so a CUDA graph cannot record it: do it outside the function given to Graph", op, why)
	if d.capturing.err == nil {
		d.capturing.err = err
	}
	return err
}
