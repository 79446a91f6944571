package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"resnet/internal/backend"
	"resnet/internal/finite"
	"resnet/internal/sysmem"
)

// BatchNorm hyper-parameters, as in PyTorch (so running statistics move between the two unchanged).
const (
	bnEps      = 1e-5
	bnMomentum = 0.1
)

// Net is a spec's graph allocated on a device for a maximum batch size. All parameters live in one
// allocation (and their gradients and momentum buffers in one each), viewed per tensor.
type Net struct {
	Spec   Spec
	Params []*Param
	// BatchesTracked counts training forward passes, torchvision's num_batches_tracked.
	BatchesTracked int64

	g        *graph
	dev      backend.Device
	capacity int
	nb       int // current batch size
	// uploadTime is UploadTime's.
	uploadTime time.Duration
	// bnMomentum is the running-statistics update rate of training-mode forwards (bnMomentum unless
	// SetBNMomentum changed it).
	bnMomentum float32
	// bnSync synchronises the BN statistics of training forwards and backwards over the ranks of a
	// data-parallel job (SetBatchNormSync); nil: each batch's own.
	bnSync backend.BatchNormSyncer
	// shared marks a net whose parameters are views of another net's (BuildFullyConv): inference only.
	shared bool
	// estimateAct is the activation dtype of a net planned without a device, for a memory estimate.
	estimateAct backend.DType
	fcBias      []float32 // host copy of fc.bias, added to a fully-convolutional net's averaged scores

	values, grads, moms backend.Tensor
	// gradSlots are the buffers the activations' gradients share (gradslots.go), gradSlotOf each owning
	// activation's.
	gradSlots    []*gradSlot
	gradSlotOf   map[*act]*gradSlot
	labels, loss backend.Tensor
	// targets holds the soft targets of TrainStepSoft, and softTargets says the step in progress uses them.
	targets     backend.Tensor
	softTargets bool
	// views for the current batch size, made once per batch size so that a step allocates nothing
	curLabels, curLoss, curTargets backend.Tensor
	lossHost                       []float32
	logitsHost                     []float32
	allocated                      []backend.Tensor
	// deviceStep is deviceStepWork as a value made once (a training step allocates nothing), and
	// stepGradScale the loss gradient scale of the step it runs.
	deviceStep    func() error
	stepGradScale float32
	// dropoutSeed and dropoutStep place the dropout masks of a training forward (SetDropoutKey).
	dropoutSeed uint64
	dropoutStep int64
	// gradReady hears, during Backward, how much of the gradient store is final (OnGradientsReady);
	// readyFrom is that offset after each node.
	gradReady func(from int) error
	readyFrom []int
}

// Build allocates a spec's network on dev for batches of up to batch examples.
func Build(dev backend.Device, s Spec, batch int) (*Net, error) {
	if batch < 1 {
		return nil, fmt.Errorf("model %s: batch size must be >= 1 (got %d)", s.Name, batch)
	}
	g, err := newGraph(s)
	if err != nil {
		return nil, err
	}
	n := &Net{Spec: s, Params: g.params, g: g, dev: dev, capacity: batch, bnMomentum: bnMomentum}
	if err := n.alloc(); err != nil {
		n.Free()
		return nil, err
	}
	return n, nil
}

func (n *Net) allocT(shape backend.Shape, dt backend.DType, layout backend.Layout) (backend.Tensor, error) {
	t, err := n.dev.Alloc(shape, dt, layout)
	if err != nil {
		return t, fmt.Errorf("model %s: allocating %v: %w", n.Spec.Name, shape, err)
	}
	n.allocated = append(n.allocated, t)
	return t, nil
}

func (n *Net) alloc() error {
	plan := n.tensorPlan()
	if m := n.memoryOf(plan); sysmem.Add(m.Device(), m.Host) == sysmem.Saturated {
		return fmt.Errorf("model %s: a batch of %d at %dx%d is too large to address", n.Spec.Name, n.capacity, n.g.input.w, n.g.input.h)
	}
	for _, t := range plan {
		var err error
		if *t.dst, err = n.allocT(t.shape, t.dt, t.layout); err != nil {
			return err
		}
	}
	for _, a := range n.g.acts {
		if !a.needGrad {
			continue
		}
		// A view of the slot's first values with the activation's own shape.
		a.grad = n.gradSlotOf[gradRoot(a)].t
		a.grad.Shape = backend.Shape{n.capacity, a.c, a.h, a.w}
		if a.flat {
			a.grad.Shape = backend.Shape{n.capacity, a.c}
		}
	}
	if !n.shared {
		n.viewParams()
	}
	n.deviceStep = n.deviceStepWork
	n.lossHost = make([]float32, n.capacity)
	n.logitsHost = make([]float32, n.capacity*n.Spec.NumClasses)
	n.nb = -1
	return n.setBatch(n.capacity)
}

// memoryShare says which part of a Memory estimate a planned tensor is.
type memoryShare uint8

const (
	shareParams memoryShare = iota
	shareActivations
	shareOther
)

// plannedTensor is one device tensor the net allocates: its shape and type, where it is kept, and which
// share of the estimate it is.
type plannedTensor struct {
	dst    *backend.Tensor
	shape  backend.Shape
	dt     backend.DType
	layout backend.Layout
	share  memoryShare
}

// activationFormat is the dtype and layout of the net's 4-D activations: the device's (see
// backend.ActivationFormatter), or the estimate's dtype for an estimate made without one (the layout does
// not change sizes).
func (n *Net) activationFormat() (backend.DType, backend.Layout) {
	if n.dev == nil {
		return n.estimateAct, backend.NCHW
	}
	return backend.ActivationFormat(n.dev)
}

// tensorPlan lists every device tensor alloc makes, for the batch capacity: the parameter, gradient and
// momentum storage (one allocation each; not for a net sharing another's parameters), every activation
// and its gradient where one is needed, the labels and per-example losses, and the batch-norm layers'
// saved statistics. EstimateMemory sums the same list, so the estimate is what Build allocates.
func (n *Net) tensorPlan() []plannedTensor {
	var plan []plannedTensor
	add := func(dst *backend.Tensor, share memoryShare, dt backend.DType, shape ...int) {
		plan = append(plan, plannedTensor{dst: dst, shape: shape, dt: dt, share: share})
	}
	actDT, actLayout := n.activationFormat()
	if !n.shared {
		total := 0
		for _, p := range n.Params {
			p.offset = total
			total += p.Shape.Numel()
		}
		add(&n.values, shareParams, backend.F32, total)
		add(&n.grads, shareParams, backend.F32, total)
		add(&n.moms, shareParams, backend.F32, total)
	}
	for _, a := range n.g.acts {
		t := plannedTensor{dst: &a.val, shape: backend.Shape{n.capacity, a.c, a.h, a.w}, dt: actDT, layout: actLayout,
			share: shareActivations}
		if a.flat { // the pooled features and the logits are f32 whatever the device's format
			t.shape, t.dt, t.layout = backend.Shape{n.capacity, a.c}, backend.F32, backend.NCHW
		}
		plan = append(plan, t)
	}
	n.gradSlots, n.gradSlotOf = n.g.gradientSlots()
	for _, s := range n.gradSlots {
		t := plannedTensor{dst: &s.t, shape: backend.Shape{n.capacity, s.perSample, 1, 1}, dt: actDT, layout: actLayout,
			share: shareActivations}
		if s.flat {
			t.shape, t.dt, t.layout = backend.Shape{n.capacity, s.perSample}, backend.F32, backend.NCHW
		}
		plan = append(plan, t)
	}
	add(&n.labels, shareOther, backend.I32, n.capacity)
	add(&n.targets, shareOther, backend.F32, n.capacity, n.Spec.NumClasses)
	add(&n.loss, shareOther, backend.F32, n.capacity)
	for _, nd := range n.g.nodes {
		if b, ok := nd.(*bnNode); ok {
			add(&b.saveMean, shareOther, backend.F32, b.x.c)
			add(&b.saveInvStd, shareOther, backend.F32, b.x.c)
		}
	}
	return plan
}

// viewParams points every Param at its part of the parameter, gradient and momentum storage.
func (n *Net) viewParams() {
	view := func(t backend.Tensor, p *Param) backend.Tensor {
		t.Shape = p.Shape
		t.Off = p.offset
		return t
	}
	for _, p := range n.Params {
		p.Value = view(n.values, p)
		if p.Kind.Trainable() {
			p.Grad = view(n.grads, p)
			p.Momentum = view(n.moms, p)
		}
	}
}

// Free releases the device memory, and the device's graphs of the net's training step.
func (n *Net) Free() {
	if g, ok := n.dev.(backend.Grapher); ok {
		g.DropGraphs(n)
	}
	for _, t := range n.allocated {
		n.dev.Free(t)
	}
	n.allocated = nil
}

// Device is the backend the net runs on.
func (n *Net) Device() backend.Device { return n.dev }

// Capacity is the largest batch the net was allocated for.
func (n *Net) Capacity() int { return n.capacity }

// InputShape is the per-sample input shape (C, H, W).
func (n *Net) InputShape() (c, h, w int) { return n.g.input.c, n.g.input.h, n.g.input.w }

// ConvLayer is one convolution of a net: its name (its weight's, without ".weight") and its geometry.
type ConvLayer struct {
	Name     string
	Geometry backend.ConvGeometry
}

// ConvLayers lists the net's convolutions in graph order, with their geometry at a batch of the given size
// in the device's activation format.
func (n *Net) ConvLayers(batch int) []ConvLayer {
	var out []ConvLayer
	dt, layout := n.activationFormat()
	for _, nd := range n.g.nodes {
		c, ok := nd.(*convNode)
		if !ok {
			continue
		}
		ph, pw := c.p.Padding()
		out = append(out, ConvLayer{Name: c.name, Geometry: backend.ConvGeometry{
			N: batch, Cin: c.in.c, H: c.in.h, W: c.in.w, Cout: c.out.c, KH: c.kh, KW: c.kw,
			Stride: c.p.Stride, PadH: ph, PadW: pw, OH: c.out.h, OW: c.out.w, DType: dt, Layout: layout,
			Groups: c.p.GroupCount(),
		}})
	}
	return out
}

// setBatch points every activation view at the first nb samples of its allocation. Views are rebuilt only
// when the batch size changes, so the training step does not allocate.
func (n *Net) setBatch(nb int) error {
	if nb < 1 || nb > n.capacity {
		return fmt.Errorf("model %s: batch of %d examples, the net holds 1..%d", n.Spec.Name, nb, n.capacity)
	}
	if nb == n.nb {
		return nil
	}
	for _, a := range n.g.acts {
		a.cur = a.val.WithBatch(nb)
		if a.needGrad {
			a.dcur = a.grad.WithBatch(nb)
		}
	}
	n.curLabels = n.labels.WithBatch(nb)
	n.curLoss = n.loss.WithBatch(nb)
	n.curTargets = n.targets.WithBatch(nb)
	n.nb = nb
	return nil
}

// Init sets the weights from seed: He (Kaiming) normal for convolutions with fan-out scaling, as
// torchvision's ResNet does; BN gamma 1 (0 for the last BN of each residual branch under ZeroInitResidual)
// and beta 0; running mean 0 and variance 1; the FC layer uniform in +-1/sqrt(fan_in), PyTorch's default.
// A topology may follow its own reference instead (initScheme): torchvision's DenseNet draws over the
// fan-in and starts the classifier's bias at 0, timm's Inception-ResNet-v2 keeps PyTorch's default.
func (n *Net) Init(seed int64) error {
	if n.shared {
		return fmt.Errorf("model %s: a fully-convolutional net reads its parameters from another net", n.Spec.Name)
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
	scheme := topologies[n.Spec.Topology].init
	for _, p := range n.Params {
		v := make([]float32, p.Shape.Numel())
		switch p.Kind {
		case ConvWeight:
			if scheme == initTorchDefault {
				torchDefault(rng, v, p.Shape[1]*p.Shape[2]*p.Shape[3])
				break
			}
			fan := p.Shape[0] // fan-out
			if scheme == initDenseNet {
				fan = p.Shape[1]
			}
			std := math.Sqrt(2 / float64(fan*p.Shape[2]*p.Shape[3]))
			if p.zeroInit && n.Spec.ZeroInitResidual {
				std = 0 // the last convolution of a pre-activation branch
			}
			for i := range v {
				v[i] = float32(rng.NormFloat64() * std)
			}
		case BNWeight:
			g := float32(1)
			if p.zeroInit && n.Spec.ZeroInitResidual {
				g = 0
			}
			for i := range v {
				v[i] = g
			}
		case BNRunningVar:
			for i := range v {
				v[i] = 1
			}
		case ConvBias: // PyTorch's default for a convolution's bias, which timm keeps
			w, ok := n.Param(strings.TrimSuffix(p.Name, ".bias") + ".weight")
			if !ok || len(w.Shape) != 4 {
				return fmt.Errorf("model %s: init %s: no convolution weight beside it", n.Spec.Name, p.Name)
			}
			torchDefault(rng, v, w.Shape[1]*w.Shape[2]*w.Shape[3])
		case FCWeight, FCBias:
			if p.Kind == FCBias && scheme == initDenseNet {
				break // torchvision's DenseNet starts the classifier's bias at 0
			}
			fanIn := n.g.logits.c
			for _, nd := range n.g.nodes {
				if l, ok := nd.(*linearNode); ok {
					fanIn = l.in.c
				}
			}
			torchDefault(rng, v, fanIn)
		}
		if err := n.dev.Upload(p.Value, v); err != nil {
			return fmt.Errorf("model %s: init %s: %w", n.Spec.Name, p.Name, err)
		}
	}
	n.BatchesTracked = 0
	if err := n.dev.Zero(n.moms); err != nil {
		return err
	}
	return n.dev.Zero(n.grads)
}

// torchDefault fills v uniform in +-1/sqrt(fanIn), PyTorch's default for a layer's weight and bias.
func torchDefault(rng *rand.Rand, v []float32, fanIn int) {
	bound := 1 / math.Sqrt(float64(fanIn))
	for i := range v {
		v[i] = float32((rng.Float64()*2 - 1) * bound)
	}
}

// Param returns the named tensor of the parameter table.
func (n *Net) Param(name string) (*Param, bool) {
	for _, p := range n.Params {
		if p.Name == name {
			return p, true
		}
	}
	return nil, false
}

// Forward runs the network on nb examples x (NCHW float32, nb*C*H*W values). In training mode BN uses and
// updates batch statistics.
func (n *Net) Forward(x []float32, nb int, train bool) error {
	if err := n.load(x, nb); err != nil {
		return err
	}
	if err := n.forwardNodes(train); err != nil {
		return err
	}
	if train {
		n.BatchesTracked++
	}
	return nil
}

// load sets the batch size and uploads the input.
func (n *Net) load(x []float32, nb int) error {
	if err := n.setBatch(nb); err != nil {
		return err
	}
	c, h, w := n.InputShape()
	if len(x) != nb*c*h*w {
		return fmt.Errorf("model %s: input holds %d values, want %d (%d x %dx%dx%d)", n.Spec.Name, len(x), nb*c*h*w, nb, c, h, w)
	}
	return n.dev.Upload(n.g.input.cur, x)
}

// forwardNodes runs every node forward on the loaded batch.
func (n *Net) forwardNodes(train bool) error {
	for _, nd := range n.g.nodes {
		if err := nd.forward(n, train); err != nil {
			return err
		}
	}
	return nil
}

// Result summarises one batch: summed loss and the number of top-1 and top-5 hits. NonFinite counts the
// examples with a NaN or an infinite logit, which are neither hits (and make LossSum NaN or infinite).
type Result struct {
	N          int
	LossSum    float64
	Top1, Top5 int
	NonFinite  int
}

// Loss computes the softmax cross-entropy of the last Forward against labels and the gradient of the mean
// loss with respect to the logits, and scores the batch.
func (n *Net) Loss(labels []int32) (Result, error) { return n.scaledLoss(labels, 1) }

// scaledLoss is Loss with the gradient multiplied by lossScale (the loss itself is not).
func (n *Net) scaledLoss(labels []int32, lossScale float32) (Result, error) {
	if err := n.loadLabels(labels); err != nil {
		return Result{}, err
	}
	if err := n.lossForward(n.gradScale(lossScale)); err != nil {
		return Result{}, err
	}
	return n.collect(labels)
}

// gradScale is the loss gradient's scale for the current batch: a scale of 1 leaves it 1/nb exact, and a
// power of two (a dynamic loss scale) scales that exactly.
func (n *Net) gradScale(lossScale float32) float32 { return lossScale * (1 / float32(n.nb)) }

// loadLabels checks the current batch's labels and uploads them.
func (n *Net) loadLabels(labels []int32) error {
	if len(labels) != n.nb {
		return fmt.Errorf("model %s: %d labels for a batch of %d", n.Spec.Name, len(labels), n.nb)
	}
	k := n.Spec.NumClasses
	for i, l := range labels {
		if l < 0 || int(l) >= k {
			return fmt.Errorf("model %s: label %d of example %d is outside 0..%d", n.Spec.Name, l, i, k-1)
		}
	}
	return n.dev.UploadInt32(n.curLabels, labels)
}

// lossForward computes the per-example losses of the current logits against the loaded labels, and the
// logits' gradient scaled by gradScale.
func (n *Net) lossForward(gradScale float32) error {
	lg := n.g.logits
	if n.softTargets {
		return n.dev.SoftTargetCrossEntropy(lg.cur, n.curTargets, n.curLoss, lg.dcur, gradScale)
	}
	return n.dev.SoftmaxCrossEntropy(lg.cur, n.curLabels, n.curLoss, lg.dcur, gradScale)
}

// collect downloads the losses and logits of the current batch and scores it.
func (n *Net) collect(labels []int32) (Result, error) {
	nb := n.nb
	if err := n.dev.Download(n.lossHost[:nb], n.curLoss); err != nil {
		return Result{}, err
	}
	r, err := n.score(labels)
	if err != nil {
		return r, err
	}
	for _, v := range n.lossHost[:nb] {
		r.LossSum += float64(v)
	}
	return r, nil
}

// score counts top-1 and top-5 hits of the current logits.
func (n *Net) score(labels []int32) (Result, error) {
	nb, k := n.nb, n.Spec.NumClasses
	logits := n.logitsHost[:nb*k]
	if err := n.dev.Download(logits, n.g.logits.cur); err != nil {
		return Result{}, err
	}
	r := Result{N: nb}
	for i, l := range labels {
		rank, finite := TargetRank(logits[i*k:(i+1)*k], l)
		switch {
		case !finite:
			r.NonFinite++
		case rank == 0:
			r.Top1++
			r.Top5++
		case rank < 5:
			r.Top5++
		}
	}
	return r, nil
}

// TargetRank counts the classes that a row of scores (logits or probabilities) ranks above class label:
// those scoring higher, and those scoring the same that come before it. A row holding a NaN or an infinity
// orders nothing (every comparison with NaN is false, so a plain count would rank the label first): it
// gets ok false, which the caller counts as a miss at every k (and rank len(row)).
func TargetRank(row []float32, label int32) (rank int, ok bool) {
	if !finite.All(row) {
		return len(row), false
	}
	target := row[label]
	for j, v := range row {
		if v > target || (v == target && j < int(label)) {
			rank++
		}
	}
	return rank, true
}

// Logits downloads the last Forward's logits (nb x classes) into dst and returns it. For a fully-
// convolutional net they are the class-score map averaged over positions, plus the FC bias.
func (n *Net) Logits(dst []float32) ([]float32, error) {
	k := n.Spec.NumClasses
	dst = append(dst[:0], make([]float32, n.nb*k)...)
	if err := n.dev.Download(dst, n.g.logits.cur); err != nil {
		return dst, err
	}
	if n.fcBias != nil {
		for i := range dst {
			dst[i] += n.fcBias[i%k]
		}
	}
	return dst, nil
}

// Backward propagates the loss gradient set by Loss to every parameter gradient.
func (n *Net) Backward() error {
	for _, a := range n.g.acts {
		a.gradWritten = false
	}
	n.g.logits.gradWritten = true
	reported := n.grads.Shape.Numel()
	for i := len(n.g.nodes) - 1; i >= 0; i-- {
		if err := n.g.nodes[i].backward(n); err != nil {
			return err
		}
		if n.gradReady != nil && n.readyFrom[i] < reported {
			reported = n.readyFrom[i]
			if err := n.gradReady(reported); err != nil {
				return err
			}
		}
	}
	return nil
}

// Evaluate runs inference on one batch and scores it.
func (n *Net) Evaluate(x []float32, labels []int32) (Result, error) {
	if err := n.Forward(x, len(labels), false); err != nil {
		return Result{}, err
	}
	return n.Loss(labels)
}

// TrainStep runs forward (training mode), loss and backward on one batch; the caller applies the update.
func (n *Net) TrainStep(x []float32, labels []int32) (Result, error) {
	return n.TrainStepScaled(x, labels, 1)
}

// TrainStepScaled is TrainStep with the loss multiplied by lossScale for the backward pass (loss scaling):
// every gradient is lossScale times the loss's, and the reported loss is the loss's own.
//
// The batch and labels are uploaded first and the losses and logits downloaded last, so that forward,
// loss and backward in between are device work only: on a backend.Grapher (a CUDA device with
// cuda.graphs) they are recorded once per batch size and loss scale and then replayed.
func (n *Net) TrainStepScaled(x []float32, labels []int32, lossScale float32) (Result, error) {
	return n.trainStep(x, labels, nil, lossScale)
}

// TrainStepSoft is TrainStepScaled against soft targets (nb x classes, each row a distribution over the
// classes: label smoothing, mixup, CutMix), with the loss -sum_c t_c log softmax_c. labels, each example's
// own class, only score the batch (Result's top-1 and top-5).
func (n *Net) TrainStepSoft(x []float32, labels []int32, targets []float32, lossScale float32) (Result, error) {
	if k := n.Spec.NumClasses; len(targets) != len(labels)*k {
		return Result{}, fmt.Errorf("model %s: %d soft targets for %d examples of %d classes", n.Spec.Name, len(targets), len(labels), k)
	}
	for i, t := range targets {
		if !(t >= 0 && t <= 1) {
			return Result{}, fmt.Errorf("model %s: soft target %d of example %d is %v, want a probability in [0, 1]", n.Spec.Name,
				i%n.Spec.NumClasses, i/n.Spec.NumClasses, t)
		}
	}
	return n.trainStep(x, labels, targets, lossScale)
}

// trainStep is a training step against labels, or against soft targets when targets is not nil.
func (n *Net) trainStep(x []float32, labels []int32, targets []float32, lossScale float32) (Result, error) {
	t0 := time.Now()
	if err := n.load(x, len(labels)); err != nil {
		return Result{}, err
	}
	if err := n.loadLabels(labels); err != nil {
		return Result{}, err
	}
	n.softTargets = targets != nil
	if n.softTargets {
		if err := n.dev.Upload(n.curTargets, targets); err != nil {
			return Result{}, err
		}
	}
	n.uploadTime = time.Since(t0)
	n.stepGradScale = n.gradScale(lossScale)
	var err error
	if g, ok := n.dev.(backend.Grapher); ok && !n.bnSynced() {
		key := backend.GraphKey{Owner: n, Batch: n.nb, GradScale: n.stepGradScale, BNMomentum: n.bnMomentum, SoftTargets: n.softTargets}
		err = g.Graph(key, n.deviceStep)
	} else {
		err = n.deviceStep()
	}
	if err != nil {
		return Result{}, err
	}
	n.BatchesTracked++
	r, err := n.collect(labels)
	n.softTargets = false
	return r, err
}

// GradientStore is the storage of every parameter's gradient (the tensors SGDSlots' Grad view) as one
// f32 tensor of shape (1, total, 1, 1), so that a whole step's gradients can be added to another such
// tensor with one Device.CopyChannels (gradient accumulation).
func (n *Net) GradientStore() backend.Tensor { return flatStore(n.grads) }

// ValueStore is the storage of every parameter-table tensor (weights and BN running statistics), and
// MomentumStore that of the SGD momentum buffers, each as GradientStore's one f32 tensor: a data-parallel
// job broadcasts them from rank 0 with one collective each.
func (n *Net) ValueStore() backend.Tensor    { return flatStore(n.values) }
func (n *Net) MomentumStore() backend.Tensor { return flatStore(n.moms) }

func flatStore(t backend.Tensor) backend.Tensor {
	t.Shape = backend.Shape{1, t.Shape.Numel(), 1, 1}
	t.Layout = backend.NCHW
	return t
}

// UploadTime is the host time the last TrainStep took to hand its batch and labels to the device: on the
// CPU the copy into the net's input, on a CUDA device the copy into pinned staging memory and the queueing
// of the transfer (the transfer itself overlaps the work queued before it). The rest of a step, until its
// loss is back on the host, is compute.
func (n *Net) UploadTime() time.Duration { return n.uploadTime }

// deviceStepWork is the device work of a training step on the loaded batch: forward, loss (with gradient
// scale stepGradScale) and backward.
func (n *Net) deviceStepWork() error {
	if err := n.forwardNodes(true); err != nil {
		return err
	}
	if err := n.lossForward(n.stepGradScale); err != nil {
		return err
	}
	return n.Backward()
}

// SGDSlots lists the trainable parameters for an SGD step with weight decay wd, exempting BN and bias
// terms when noDecayBNBias is set.
func (n *Net) SGDSlots(wd float32, noDecayBNBias bool) []backend.SGDSlot {
	var slots []backend.SGDSlot
	for _, p := range n.Params {
		if !p.Kind.Trainable() {
			continue
		}
		d := wd
		if noDecayBNBias && p.Kind != ConvWeight && p.Kind != FCWeight {
			d = 0
		}
		slots = append(slots, backend.SGDSlot{Param: p.Value, Grad: p.Grad, Buf: p.Momentum, WeightDecay: d})
	}
	return slots
}

// Get downloads a parameter-table tensor.
func (n *Net) Get(p *Param) ([]float32, error) {
	v := make([]float32, p.Shape.Numel())
	return v, n.dev.Download(v, p.Value)
}

// Set uploads a parameter-table tensor.
func (n *Net) Set(p *Param, v []float32) error {
	if len(v) != p.Shape.Numel() {
		return fmt.Errorf("model %s: %s needs %d values %v, got %d", n.Spec.Name, p.Name, p.Shape.Numel(), p.Shape, len(v))
	}
	return n.dev.Upload(p.Value, v)
}

func (c *convNode) forward(n *Net, _ bool) error {
	if err := n.dev.ConvForward(c.p, c.in.cur, c.w.Value, c.out.cur); err != nil {
		return fmt.Errorf("%s: %w", c.name, err)
	}
	return nil
}

func (c *convNode) backward(n *Net) error {
	if err := n.dev.ConvBackwardFilter(c.p, c.in.cur, c.out.dcur, c.w.Grad); err != nil {
		return fmt.Errorf("%s: %w", c.name, err)
	}
	if !c.in.needGrad {
		return nil
	}
	if err := n.dev.ConvBackwardData(c.p, c.out.dcur, c.w.Value, c.in.dcur, c.in.gradWritten); err != nil {
		return fmt.Errorf("%s: %w", c.name, err)
	}
	c.in.gradWritten = true
	return nil
}

// SetBatchNormSync makes every BN layer of the net synchronised batch norm over the ranks s joins
// (PyTorch's SyncBatchNorm): training forwards normalise with, and move the running statistics towards,
// the statistics of the global batch, every rank's slice together, and backwards use its sums (see
// backend.BatchNormParams.Sync). Inference forwards never exchange anything. Every rank must run the same
// training forwards and backwards. nil turns it off; a syncer of one rank changes nothing.
//
// With more than one rank a training step is not recorded as a device graph: the exchanges inside it may
// wait for the device or go through the host, which a recording cannot hold.
func (n *Net) SetBatchNormSync(s backend.BatchNormSyncer) { n.bnSync = s }

// bnSynced reports whether the net's BN layers exchange statistics with other ranks.
func (n *Net) bnSynced() bool { return n.bnSync != nil && n.bnSync.WorldSize() > 1 }

// params are the op parameters of the BN, for a training forward or backward when train is set.
func (b *bnNode) params(n *Net, train bool) backend.BatchNormParams {
	p := backend.BatchNormParams{Eps: b.eps, Momentum: n.bnMomentum, ReLU: b.relu, Residual: b.z != nil}
	if train {
		p.Sync = n.bnSync
	}
	return p
}

func (b *bnNode) forward(n *Net, train bool) error {
	t := backend.BatchNormTensors{
		X: b.x.cur, Y: b.y.cur,
		Gamma: b.gamma.Value, Beta: b.beta.Value,
		RunningMean: b.mean.Value, RunningVar: b.vr.Value,
		SaveMean: b.saveMean, SaveInvStd: b.saveInvStd,
	}
	if b.z != nil {
		t.Z = b.z.cur
	}
	var err error
	if train {
		err = n.dev.BatchNormForwardTraining(b.params(n, true), t)
	} else {
		err = n.dev.BatchNormForwardInference(b.params(n, false), t)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", b.name, err)
	}
	return nil
}

func (b *bnNode) backward(n *Net) error {
	g := backend.BatchNormGrads{
		X: b.x.cur, Y: b.y.cur, DY: b.y.dcur,
		Gamma:    b.gamma.Value,
		SaveMean: b.saveMean, SaveInvStd: b.saveInvStd,
		DX: b.x.dcur, DGamma: b.gamma.Grad, DBeta: b.beta.Grad,
	}
	if b.z != nil {
		// The shortcut's gradient is written, not added: the unit's output BN must be the first consumer
		// of z to run backward, which the builder's node order guarantees.
		if b.z.gradWritten {
			return fmt.Errorf("%s: shortcut gradient already written (graph order broken)", b.name)
		}
		g.DZ = b.z.dcur
		b.z.gradWritten = true
	}
	if err := n.dev.BatchNormBackward(b.params(n, true), g); err != nil {
		return fmt.Errorf("%s: %w", b.name, err)
	}
	b.x.gradWritten = true
	return nil
}

func (m *maxPoolNode) forward(n *Net, _ bool) error {
	return n.dev.MaxPoolForward(m.p, m.in.cur, m.out.cur)
}

// backward writes the input's gradient (the op cannot add to it): where the input feeds other layers too
// (Inception-ResNet's reduction blocks), the pool must come after them in the graph, so that it runs first.
func (m *maxPoolNode) backward(n *Net) error {
	if m.in.gradWritten {
		return fmt.Errorf("%s: max-pool input gradient already written (graph order broken)", m.out.name)
	}
	m.in.gradWritten = true
	return n.dev.MaxPoolBackward(m.p, m.in.cur, m.out.cur, m.out.dcur, m.in.dcur)
}

func (a *avgPoolNode) forward(n *Net, _ bool) error {
	return n.dev.GlobalAvgPoolForward(a.in.cur, a.out.cur)
}

func (a *avgPoolNode) backward(n *Net) error {
	a.in.gradWritten = true
	return n.dev.GlobalAvgPoolBackward(a.out.dcur, a.in.dcur)
}

func (l *linearNode) forward(n *Net, _ bool) error {
	return n.dev.LinearForward(l.in.cur, l.matrix(l.w.Value), l.b.Value, l.out.cur)
}

func (l *linearNode) backward(n *Net) error {
	l.in.gradWritten = true
	return n.dev.LinearBackward(l.in.cur, l.matrix(l.w.Value), l.out.dcur, l.in.dcur, l.matrix(l.w.Grad), l.b.Grad)
}

// matrix views a weight (or its gradient) as the (Out, In) matrix the linear op takes.
func (l *linearNode) matrix(t backend.Tensor) backend.Tensor {
	t.Shape = l.wMatrix
	return t
}
