package eval

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sort"

	"resnet/internal/dataset"
	"resnet/internal/finite"
	"resnet/internal/jsonnum"
	"resnet/internal/model"
	"resnet/internal/vision"
)

// Protocol kinds.
const (
	CenterCrop = "1-crop"      // the split's evaluation pipeline: centre crop, or the whole CIFAR image
	TenCrop    = "10-crop"     // four corners and the centre, and their mirror images
	MultiScale = "multi-scale" // the fully-convolutional net on the whole image at several shorter sides
)

// PaperScales are the shorter sides of the paper's multi-scale test (He et al. 2015, section 3.4).
var PaperScales = []int{224, 256, 384, 480, 640}

// Protocol selects how each image is scored. Every protocol averages softmax probabilities over the
// views of an image (crops, flips, scales).
type Protocol struct {
	Kind   string
	Scales []int // shorter sides, for MultiScale
}

func (p Protocol) String() string {
	if p.Kind == MultiScale {
		return fmt.Sprintf("%s %v", p.Kind, p.Scales)
	}
	return p.Kind
}

// Options configure Collect.
type Options struct {
	Protocol Protocol
	// Workers prepare images in parallel (0: GOMAXPROCS).
	Workers int
	Seed    int64
	Strict  bool
	// OnSkip, when set, hears of every unreadable image left out.
	OnSkip func([]*dataset.BadExampleError)
	// MaxCachedValues bounds the activation values (float32s) of the fully-convolutional nets kept for
	// reuse across image shapes by MultiScale; 0 means 1<<30 (4 GiB).
	MaxCachedValues int64
}

// Probs are the class probabilities a model (or an ensemble) gives each image of a split, in the split's
// order with unreadable images left out.
type Probs struct {
	Classes int
	P       []float32 // len(Labels) x Classes
	Labels  []int32
	Skipped int
}

// Collect runs net over every image of the split under the protocol and returns the class probabilities.
// center is the split's 1-crop pipeline (used for CenterCrop); set serves the other protocols.
func Collect(net *model.Net, center dataset.Pipeline, set *Set, opt Options) (*Probs, error) {
	switch opt.Protocol.Kind {
	case CenterCrop, "":
		if center == nil {
			return nil, errors.New("eval: 1-crop needs the split's evaluation pipeline")
		}
		return collectViews(net, center, 1, opt)
	case TenCrop:
		if err := set.validate(); err != nil {
			return nil, err
		}
		return collectViews(net, tenCropPipeline{set}, tenCropViews, opt)
	case MultiScale:
		if err := set.validate(); err != nil {
			return nil, err
		}
		return collectMultiScale(net, set, opt)
	}
	return nil, fmt.Errorf("eval: unknown protocol %q (want %s, %s or %s)", opt.Protocol.Kind, CenterCrop, TenCrop, MultiScale)
}

// collectViews evaluates a pipeline whose examples are views consecutive views of one image each.
func collectViews(net *model.Net, p dataset.Pipeline, views int, opt Options) (*Probs, error) {
	c, h, w := net.InputShape()
	pc, ph, pw := p.OutputShape()
	if pc != views*c || ph != h || pw != w {
		return nil, fmt.Errorf("eval: the data gives %dx%dx%d images, the net takes %dx%dx%d", pc/views, ph, pw, c, h, w)
	}
	batch := net.Capacity() / views
	if batch < 1 {
		return nil, fmt.Errorf("eval: %d views per image need a batch of at least %d (got %d)", views, views, net.Capacity())
	}
	l, err := dataset.NewPipelineLoader(p, dataset.LoaderOptions{BatchSize: batch, Seed: opt.Seed, Workers: opt.Workers, Strict: opt.Strict})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	k := net.Spec.NumClasses
	out := &Probs{Classes: k}
	var logits []float32
	prob := make([]float64, k)
	out.Skipped, err = forEachBatch(l, opt.OnSkip, func(b *dataset.Batch) error {
		nv := b.N * views
		if err := net.Forward(b.X[:nv*c*h*w], nv, false); err != nil {
			return err
		}
		if logits, err = net.Logits(logits); err != nil {
			return err
		}
		for i := range b.N {
			clear(prob)
			for v := range views {
				addSoftmax(prob, logits[(i*views+v)*k:(i*views+v+1)*k])
			}
			out.add(prob, float64(views), b.Labels[i])
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// errStop ends forEachBatch early without an error.
var errStop = errors.New("stop")

// forEachBatch runs fn on every non-empty batch of the loader's epoch 0 (until fn returns errStop),
// reporting skipped images to onSkip, and returns how many were skipped.
func forEachBatch(l *dataset.Loader, onSkip func([]*dataset.BadExampleError), fn func(*dataset.Batch) error) (skipped int, err error) {
	if err := l.Start(0, 0); err != nil {
		return 0, err
	}
	for {
		b, err := l.Next()
		if err != nil {
			return skipped, fmt.Errorf("eval: %w", err)
		}
		if b == nil {
			return skipped, nil
		}
		skipped += len(b.Skipped)
		if onSkip != nil && len(b.Skipped) > 0 {
			onSkip(b.Skipped)
		}
		if b.N > 0 {
			err = fn(b)
		}
		l.Release(b)
		if err == errStop {
			return skipped, nil
		}
		if err != nil {
			return skipped, fmt.Errorf("eval: %w", err)
		}
	}
}

// addSoftmax adds the softmax of logits to sum. Logits holding a NaN or an infinity have no softmax: they
// make every entry of sum NaN, so that the image scores as a non-finite output (a miss) whatever its
// other views, or the other models of an ensemble, say.
func addSoftmax(sum []float64, logits []float32) {
	if !finite.All(logits) {
		for j := range sum {
			sum[j] = math.NaN()
		}
		return
	}
	m := math.Inf(-1)
	for _, v := range logits {
		m = math.Max(m, float64(v))
	}
	var z float64
	for _, v := range logits {
		z += math.Exp(float64(v) - m)
	}
	for j, v := range logits {
		sum[j] += math.Exp(float64(v)-m) / z
	}
}

// add appends one image: its summed probabilities over n views, and its label.
func (p *Probs) add(sum []float64, n float64, label int32) {
	for _, v := range sum {
		p.P = append(p.P, float32(v/n))
	}
	p.Labels = append(p.Labels, label)
}

// Average is the ensemble of several models' probabilities on the same split: their mean per image.
func Average(ps []*Probs) (*Probs, error) {
	if len(ps) == 0 {
		return nil, errors.New("eval: no models to average")
	}
	first := ps[0]
	out := &Probs{Classes: first.Classes, P: make([]float32, len(first.P)), Labels: first.Labels, Skipped: first.Skipped}
	for m, p := range ps {
		if p.Classes != first.Classes || len(p.Labels) != len(first.Labels) {
			return nil, fmt.Errorf("eval: ensemble member %d scored %d images over %d classes, member 1 %d over %d", m+1, len(p.Labels), p.Classes, len(first.Labels), first.Classes)
		}
		for i, l := range p.Labels {
			if l != first.Labels[i] {
				return nil, fmt.Errorf("eval: ensemble member %d saw label %d for image %d, member 1 saw %d (different data)", m+1, l, i, first.Labels[i])
			}
		}
		for i, v := range p.P {
			out.P[i] += v / float32(len(ps))
		}
	}
	return out, nil
}

// ClassScore is one class's share of a score.
type ClassScore struct {
	Class   int     `json:"class"`
	Name    string  `json:"name,omitempty"`
	N       int     `json:"n"`
	Top1Err float64 `json:"top1_err"`
}

// Score turns probabilities into errors: top-1 and top-5 (ties count for the true class), and the loss,
// the mean negative log of the probability given to the true class. An image with a NaN or infinite
// probability is wrong at top-1 and top-5, counted in NonFinite, and makes the loss NaN. names labels the
// per-class scores (nil: numbers only).
func Score(p *Probs, names []string) (Scores, []ClassScore, error) {
	if len(p.Labels) == 0 {
		return Scores{}, nil, errors.New("eval: the data set is empty (or every image was unreadable)")
	}
	k := p.Classes
	s := Scores{N: len(p.Labels), Skipped: p.Skipped}
	classes := make([]ClassScore, k)
	for c := range classes {
		classes[c].Class = c
		if c < len(names) {
			classes[c].Name = names[c]
		}
	}
	var top1, top5 int
	var loss float64
	for i, l := range p.Labels {
		row := p.P[i*k : (i+1)*k]
		rank, finite := model.TargetRank(row, l)
		classes[l].N++
		if !finite {
			s.NonFinite++
			classes[l].Top1Err++
			loss = math.NaN()
			continue
		}
		if rank == 0 {
			top1++
		} else {
			classes[l].Top1Err++
		}
		if rank < 5 {
			top5++
		}
		loss -= math.Log(math.Max(float64(row[l]), 1e-30))
	}
	s.Loss = jsonnum.Float(loss / float64(s.N))
	s.Top1Err = 1 - float64(top1)/float64(s.N)
	s.Top5Err = 1 - float64(top5)/float64(s.N)
	for c := range classes {
		if classes[c].N > 0 {
			classes[c].Top1Err /= float64(classes[c].N)
		}
	}
	return s, classes, nil
}

// WorstClasses returns the per-class scores sorted by error, worst first (ties by class number).
func WorstClasses(cs []ClassScore) []ClassScore {
	out := append([]ClassScore(nil), cs...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Top1Err > out[j].Top1Err })
	return out
}

// msImage is one image prepared for the multi-scale protocol: per scale, the resized image and its mirror
// image (2 x 3 x h x w, normalised).
type msImage struct {
	label int
	err   error
	views []msView
}

type msView struct {
	h, w int
	x    []float32
}

// collectMultiScale scores each image with the fully-convolutional net on the whole image resized to each
// shorter side and on its mirror image, averaging the probabilities over scales and flips. Images are
// prepared by Workers goroutines and scored in order.
func collectMultiScale(net *model.Net, set *Set, opt Options) (*Probs, error) {
	scales := opt.Protocol.Scales
	if len(scales) == 0 {
		return nil, errors.New("eval: multi-scale needs at least one scale")
	}
	for _, s := range scales {
		if s < 1 {
			return nil, fmt.Errorf("eval: multi-scale sizes must be positive (got %d)", s)
		}
	}
	workers := opt.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	n := set.Len()
	done := make(chan struct{})
	defer close(done)
	type job struct {
		i   int
		res chan msImage
	}
	jobs := make(chan job)
	order := make(chan chan msImage, 2*workers)
	go func() {
		defer close(jobs)
		defer close(order)
		for i := range n {
			j := job{i, make(chan msImage, 1)}
			select {
			case order <- j.res:
			case <-done:
				return
			}
			select {
			case jobs <- j:
			case <-done:
				return
			}
		}
	}()
	for range workers {
		go func() {
			r := newReader(set)
			var z vision.Resizer
			var img vision.Image
			for j := range jobs {
				j.res <- prepareScales(r, &z, &img, j.i, scales, set)
			}
		}()
	}

	cache := newNetCache(net, opt.MaxCachedValues)
	defer cache.free()
	k := net.Spec.NumClasses
	out := &Probs{Classes: k}
	prob := make([]float64, k)
	var logits []float32
	for res := range order {
		im := <-res
		if im.err != nil {
			var bad *dataset.BadExampleError
			if errors.As(im.err, &bad) && !opt.Strict {
				out.Skipped++
				if opt.OnSkip != nil {
					opt.OnSkip([]*dataset.BadExampleError{bad})
				}
				continue
			}
			return nil, im.err
		}
		clear(prob)
		for _, v := range im.views {
			fc, err := cache.get(v.h, v.w)
			if err != nil {
				return nil, err
			}
			if err := fc.Forward(v.x, 2, false); err != nil {
				return nil, fmt.Errorf("eval: %w", err)
			}
			if logits, err = fc.Logits(logits); err != nil {
				return nil, fmt.Errorf("eval: %w", err)
			}
			addSoftmax(prob, logits[:k])
			addSoftmax(prob, logits[k:2*k])
		}
		out.add(prob, float64(2*len(im.views)), int32(im.label))
	}
	return out, nil
}

// prepareScales reads image i and resizes it to each shorter side.
func prepareScales(r *reader, z *vision.Resizer, img *vision.Image, i int, scales []int, set *Set) msImage {
	label, err := r.read(i)
	if err != nil {
		return msImage{err: err}
	}
	out := msImage{label: label}
	for _, s := range scales {
		w, h := vision.ShorterSideSize(r.img.W, r.img.H, s)
		z.Resize(img, &r.img, w, h)
		x := make([]float32, 2*3*h*w)
		toCHW(x[:3*h*w], img, false, set.Mean, set.Std)
		toCHW(x[3*h*w:], img, true, set.Mean, set.Std)
		out.views = append(out.views, msView{h: h, w: w, x: x})
	}
	return out
}

// toCHW writes an interleaved RGB image as normalised CHW floats, mirrored left-right when flip is set.
func toCHW(dst []float32, img *vision.Image, flip bool, mean, std [3]float32) {
	w, h := img.W, img.H
	for y := range h {
		row := img.Pix[3*y*w : 3*(y+1)*w]
		for x := range w {
			sx := x
			if flip {
				sx = w - 1 - x
			}
			for c := range 3 {
				dst[(c*h+y)*w+x] = (float32(row[3*sx+c]) - mean[c]) / std[c]
			}
		}
	}
}

// netCache keeps fully-convolutional nets by input shape, least recently used first out, within a budget
// of activation values.
type netCache struct {
	base   *model.Net
	budget int64
	used   int64
	nets   []cachedNet // most recently used last
}

type cachedNet struct {
	h, w int
	net  *model.Net
	size int64
}

// defaultCachedValues is the default budget of the fully-convolutional nets' cache (4 GiB of float32).
const defaultCachedValues = 1 << 30

func newNetCache(base *model.Net, budget int64) *netCache {
	if budget <= 0 {
		budget = defaultCachedValues
	}
	return &netCache{base: base, budget: budget}
}

func (c *netCache) get(h, w int) (*model.Net, error) {
	for i, e := range c.nets {
		if e.h == h && e.w == w {
			c.nets = append(append(c.nets[:i:i], c.nets[i+1:]...), e)
			return e.net, nil
		}
	}
	net, err := model.BuildFullyConv(c.base, h, w, 2)
	if err != nil {
		return nil, fmt.Errorf("eval: %dx%d input: %w", w, h, err)
	}
	size := net.ActivationValues()
	for len(c.nets) > 0 && c.used+size > c.budget {
		c.used -= c.nets[0].size
		c.nets[0].net.Free()
		c.nets = c.nets[1:]
	}
	c.nets = append(c.nets, cachedNet{h: h, w: w, net: net, size: size})
	c.used += size
	return net, nil
}

func (c *netCache) free() {
	for _, e := range c.nets {
		e.net.Free()
	}
	c.nets = nil
}
