package train

// The soft targets of the modern recipe: label smoothing (train.label_smoothing), and mixup and CutMix
// (train.mixup_alpha, train.cutmix_alpha, train.mix_prob) as torchvision's v2.MixUp and v2.CutMix do them:
// each example is paired with the one before it in the batch (the batch rolled by one), the images mixed
// or pasted on the host before the upload, and the labels mixed into the targets the loss is taken
// against (Net.TrainStepSoft). Every draw comes from (seed, step), so a resumed run mixes exactly as an
// uninterrupted one.

import (
	"math"
	"math/rand/v2"

	"resnet/internal/config"
)

// mixSalt keys the mixing draws apart from the other users of the seed.
const mixSalt = 0x6d69787570637574

// mixer builds each step's soft targets and mixes its images.
type mixer struct {
	smoothing                     float64
	mixupAlpha, cutmixAlpha, prob float64
	classes                       int
	targets, saved                []float32
}

// newMixer is the mixer of a config, or nil when training uses plain labels.
func newMixer(c config.TrainConfig, classes int) *mixer {
	if c.LabelSmoothing == 0 && c.MixupAlpha == 0 && c.CutMixAlpha == 0 {
		return nil
	}
	return &mixer{smoothing: c.LabelSmoothing, mixupAlpha: c.MixupAlpha, cutmixAlpha: c.CutMixAlpha, prob: c.MixProb,
		classes: classes}
}

// mixKind is what a batch gets.
type mixKind int

const (
	mixNone mixKind = iota
	mixUp
	cutMix
)

// mixDraw is one batch's draw: the kind, the weight lam of each example's own image and label, and for
// CutMix the centre of the box (rx, ry) that is pasted from the partner.
type mixDraw struct {
	kind   mixKind
	lam    float64
	rx, ry int
}

// draw chooses step's mixing: with probability prob a batch is mixed, by mixup or CutMix (each with
// probability 1/2 when both are on, as torchvision's RandomChoice picks), lam from Beta(alpha, alpha).
func (m *mixer) draw(seed, step int64, h, w int) mixDraw {
	rng := rand.New(rand.NewPCG(uint64(seed)^mixSalt, uint64(step)))
	if m.mixupAlpha == 0 && m.cutmixAlpha == 0 || rng.Float64() >= m.prob {
		return mixDraw{kind: mixNone, lam: 1}
	}
	kind := mixUp
	if m.mixupAlpha == 0 || (m.cutmixAlpha > 0 && rng.Float64() < 0.5) {
		kind = cutMix
	}
	alpha := m.mixupAlpha
	if kind == cutMix {
		alpha = m.cutmixAlpha
	}
	d := mixDraw{kind: kind, lam: betaSample(rng, alpha)}
	if kind == cutMix {
		d.rx, d.ry = rng.IntN(w), rng.IntN(h)
	}
	return d
}

// apply mixes the n images of x (n x c x h x w, CHW each) as d says, in place, and returns the n x classes
// soft targets of labels. A CutMix draw's lam becomes the share of the image left unpasted.
func (m *mixer) apply(d mixDraw, x []float32, labels []int32, c, h, w int) []float32 {
	n := len(labels)
	sample := c * h * w
	switch d.kind {
	case mixUp:
		d.lam = m.mixup(x, n, sample, d.lam)
	case cutMix:
		d.lam = m.cutmix(x, n, c, h, w, d)
	}
	return m.softTargets(labels, d.lam, d.kind != mixNone)
}

// mixup writes x[i] = lam x[i] + (1-lam) x[i-1] (x[-1] being the last image), each product rounded to
// float32 before the sum, as torch's roll(1, 0).mul_(1-lam).add_(x.mul(lam)) computes it.
func (m *mixer) mixup(x []float32, n, sample int, lam float64) float64 {
	a, b := float32(lam), float32(1-lam)
	m.pairs(x, n, sample, func(own, partner []float32) {
		for j, v := range own {
			own[j] = float32(partner[j]*b) + float32(v*a)
		}
	})
	return lam
}

// pairs calls fn with each image of x and its partner, the image before it (the last one for the first),
// as it was before any was changed: the images are visited last first, and the last is saved for the first.
func (m *mixer) pairs(x []float32, n, sample int, fn func(own, partner []float32)) {
	m.saved = append(m.saved[:0], x[(n-1)*sample:n*sample]...)
	for i := n - 1; i >= 0; i-- {
		partner := m.saved
		if i > 0 {
			partner = x[(i-1)*sample : i*sample]
		}
		fn(x[i*sample:(i+1)*sample], partner)
	}
}

// cutmix pastes into each image the box of its partner's (the image before it) that torchvision's CutMix
// cuts: half-sides int(r*W) and int(r*H) around (rx, ry) with r = sqrt(1-lam)/2, clipped to the image. It
// returns the adjusted lam, 1 - box area / image area.
func (m *mixer) cutmix(x []float32, n, c, h, w int, d mixDraw) float64 {
	r := 0.5 * math.Sqrt(1-d.lam)
	rw, rh := int(r*float64(w)), int(r*float64(h))
	x1, y1 := max(d.rx-rw, 0), max(d.ry-rh, 0)
	x2, y2 := min(d.rx+rw, w), min(d.ry+rh, h)
	m.pairs(x, n, c*h*w, func(own, partner []float32) {
		for ch := range c {
			for y := y1; y < y2; y++ {
				row := (ch*h + y) * w
				copy(own[row+x1:row+x2], partner[row+x1:row+x2])
			}
		}
	})
	return 1 - float64((x2-x1)*(y2-y1))/float64(w*h)
}

// softTargets are the targets of labels: each example's one-hot label, mixed with its partner's (lam of
// its own) when mixed, then smoothed, t (1-eps) + eps/K, in float32 as PyTorch's cross_entropy computes
// them with label_smoothing.
func (m *mixer) softTargets(labels []int32, lam float64, mixed bool) []float32 {
	n, k := len(labels), m.classes
	if cap(m.targets) < n*k {
		m.targets = make([]float32, n*k)
	}
	m.targets = m.targets[:n*k]
	clear(m.targets)
	a, b := float32(lam), float32(1-lam)
	keep, spread := float32(1-m.smoothing), float32(m.smoothing/float64(k))
	for i, l := range labels {
		row := m.targets[i*k : (i+1)*k]
		row[l] = 1
		if mixed {
			// torch: one_hot.roll(1, 0).mul_(1-lam).add_(one_hot.mul(lam))
			partner := labels[(i+n-1)%n]
			for c := range row {
				var own, other float32
				if int32(c) == l {
					own = 1
				}
				if int32(c) == partner {
					other = 1
				}
				row[c] = float32(other*b) + float32(own*a)
			}
		}
		if m.smoothing > 0 {
			for c, t := range row {
				row[c] = float32(t*keep) + spread
			}
		}
	}
	return m.targets
}

// betaSample draws from Beta(alpha, alpha) as the ratio of two Gamma(alpha) draws.
func betaSample(rng *rand.Rand, alpha float64) float64 {
	x := gammaSample(rng, alpha)
	y := gammaSample(rng, alpha)
	if x+y == 0 {
		return 0.5
	}
	return x / (x + y)
}

// gammaSample draws from Gamma(alpha, 1) by Marsaglia and Tsang's method, boosted for alpha < 1 by
// U^(1/alpha).
func gammaSample(rng *rand.Rand, alpha float64) float64 {
	boost := 1.0
	if alpha < 1 {
		boost = math.Pow(rng.Float64(), 1/alpha)
		alpha++
	}
	d := alpha - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		z := rng.NormFloat64()
		v := 1 + c*z
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := rng.Float64()
		if u < 1-0.0331*z*z*z*z || math.Log(u) < 0.5*z*z+d*(1-v+math.Log(v)) {
			return d * v * boost
		}
	}
}
