// This file holds the automatic augmentation policies of torchvision 0.29 (transforms.v2.RandAugment,
// TrivialAugmentWide and AutoAugment): their operation sets, magnitude bins and learned sub-policies, and
// the random choices they make for each image, drawn from the caller's generator in torchvision's order.

package vision

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// AugmentOp is one operation of the automatic augmentation policies.
type AugmentOp uint8

// The operations, named as torchvision names them.
const (
	OpIdentity AugmentOp = iota
	OpShearX
	OpShearY
	OpTranslateX
	OpTranslateY
	OpRotate
	OpBrightness
	OpColor
	OpContrast
	OpSharpness
	OpPosterize
	OpSolarize
	OpAutoContrast
	OpEqualize
	OpInvert
	numAugmentOps
)

var augmentOpNames = [numAugmentOps]string{"Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate",
	"Brightness", "Color", "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize", "Invert"}

func (op AugmentOp) String() string {
	if op < numAugmentOps {
		return augmentOpNames[op]
	}
	return fmt.Sprintf("AugmentOp(%d)", uint8(op))
}

// ApplyOp applies op to p with magnitude m as torchvision's _apply_image_or_video_transform does: shears
// by the factor m, translations by int(m) pixels (truncated), rotations by m degrees, brightness,
// saturation (Color), contrast and sharpness by the factor 1 + m, posterize to int(m) bits, solarize at
// 255 m. Operations without a magnitude ignore m. sc is scratch.
func ApplyOp(p *Planes, op AugmentOp, m float64, sc *AugmentScratch) {
	switch op {
	case OpIdentity:
	case OpShearX:
		ShearX(p, m, sc)
	case OpShearY:
		ShearY(p, m, sc)
	case OpTranslateX:
		Translate(p, int(m), 0, sc)
	case OpTranslateY:
		Translate(p, 0, int(m), sc)
	case OpRotate:
		Rotate(p, m, sc)
	case OpBrightness:
		Brightness(p, 1+m)
	case OpColor:
		Saturation(p, 1+m, sc)
	case OpContrast:
		Contrast(p, 1+m)
	case OpSharpness:
		Sharpness(p, 1+m, sc)
	case OpPosterize:
		Posterize(p, int(m))
	case OpSolarize:
		Solarize(p, 255*m)
	case OpAutoContrast:
		AutoContrast(p)
	case OpEqualize:
		Equalize(p)
	case OpInvert:
		Invert(p)
	default:
		panic(fmt.Sprintf("vision: unknown augmentation op %d", op))
	}
}

// linspace32 is element i of torch.linspace(start, end, steps) in float32, computed as PyTorch's CPU kernel
// does: the first half counts up from start, the second half down from end, each a fused multiply-add of
// the float32 step.
func linspace32(start, end float64, steps, i int) float32 {
	s, e := float32(start), float32(end)
	if steps == 1 {
		return s
	}
	step := (e - s) / float32(steps-1)
	if i < steps/2 {
		return fma32(step, float32(i), s)
	}
	return fma32(-step, float32(steps-i-1), e)
}

// magnitudeSpace is a policy family's magnitude ranges: RandAugment and AutoAugment share one, and
// TrivialAugmentWide has its wider one.
type magnitudeSpace struct {
	shear, rotate, enhance float64
	translate              float64 // 0: 150/331 of the image side, else this many pixels
	posterizeSpan          float64 // posterize bins fall from 8 bits by this many over the bins
}

var (
	standardSpace = magnitudeSpace{shear: 0.3, rotate: 30, enhance: 0.9, posterizeSpan: 4}
	wideSpace     = magnitudeSpace{shear: 0.99, rotate: 135, enhance: 0.99, translate: 32, posterizeSpan: 6}
)

// magnitude is bin i of nbins of op's magnitudes on an h x w image, as torchvision's _AUGMENTATION_SPACE
// tables compute them (float32 linspace; posterize's bits rounded from float32), and whether the op takes a
// random sign. ok is false for operations without a magnitude.
func (s magnitudeSpace) magnitude(op AugmentOp, i, nbins, h, w int) (m float64, signed, ok bool) {
	switch op {
	case OpShearX, OpShearY:
		return float64(linspace32(0, s.shear, nbins, i)), true, true
	case OpTranslateX, OpTranslateY:
		side := w
		if op == OpTranslateY {
			side = h
		}
		end := s.translate
		if end == 0 {
			end = 150.0 / 331.0 * float64(side)
		}
		return float64(linspace32(0, end, nbins, i)), true, true
	case OpRotate:
		return float64(linspace32(0, s.rotate, nbins, i)), true, true
	case OpBrightness, OpColor, OpContrast, OpSharpness:
		return float64(linspace32(0, s.enhance, nbins, i)), true, true
	case OpPosterize:
		q := float32(i) / float32(float64(nbins-1)/s.posterizeSpan)
		return math.RoundToEven(float64(8 - q)), false, true
	case OpSolarize:
		// v2 solarizes at 255 times this float32 fraction (in float64, then compared in float32); v1
		// took its thresholds from torch.linspace(255, 0), which differ at bins 16, 18 and 24 of 31: v1
		// inverts the levels 119, 102 and 51 there, v2 does not. This is v2.
		return float64(linspace32(1, 0, nbins, i)), false, true
	}
	return 0, false, false
}

// randomSign negates m with probability one half, as torchvision's "torch.rand(()) <= 0.5".
func randomSign(m float64, rng *rand.Rand) float64 {
	if rng.Float64() <= 0.5 {
		return -m
	}
	return m
}

// policyKind is a family of policies.
type policyKind uint8

const (
	randAugment policyKind = iota + 1
	trivialAugment
	autoAugment
)

// subPolicyOp is one step of an AutoAugment sub-policy: op with probability prob at magnitude bin bin.
type subPolicyOp struct {
	op   AugmentOp
	prob float64
	bin  int
}

// AutoAugment is an automatic augmentation policy, as ParseAutoAugment reads it. It is never modified, so
// goroutines may share it, each with its own rng and AugmentScratch.
type AutoAugment struct {
	kind      policyKind
	name      string
	numOps    int // RandAugment's N
	magnitude int // RandAugment's M
	policies  [][2]subPolicyOp
}

// The operations RandAugment and TrivialAugmentWide choose from, uniformly, in torchvision's order.
var uniformOps = []AugmentOp{OpIdentity, OpShearX, OpShearY, OpTranslateX, OpTranslateY, OpRotate,
	OpBrightness, OpColor, OpContrast, OpSharpness, OpPosterize, OpSolarize, OpAutoContrast, OpEqualize}

// randAugmentBins is RandAugment's number of magnitude bins (torchvision's default, used by its references).
const randAugmentBins = 31

// trivialAugmentBins is TrivialAugmentWide's number of magnitude bins.
const trivialAugmentBins = 31

// autoAugmentBins is the number of magnitude bins of AutoAugment's learned policies.
const autoAugmentBins = 10

// AutoAugmentPolicies are the accepted policy names, RandAugment's as its pattern.
const AutoAugmentPolicies = "none, rand-m<M>-n<N> (RandAugment: magnitude M in [0, 30], N ops an image; e.g. rand-m9-n2), " +
	"trivial (TrivialAugmentWide), autoaugment-imagenet or autoaugment-cifar10 (AutoAugment's learned policies)"

// AutoAugmentError reports a policy name that ParseAutoAugment does not accept. Reason reads after the
// setting's name: `must be none, rand-m<M>-n<N> ... (got "foo")`.
type AutoAugmentError struct {
	Reason string
}

func (e *AutoAugmentError) Error() string { return "vision: auto-augment policy " + e.Reason }

// ParseAutoAugment reads a policy name: "" or none (nil: no augmentation), rand-m<M>-n<N>
// (RandAugment(num_ops=N, magnitude=M, num_magnitude_bins=31)), trivial (TrivialAugmentWide()),
// autoaugment-imagenet or autoaugment-cifar10 (AutoAugment(AutoAugmentPolicy.IMAGENET / CIFAR10)).
func ParseAutoAugment(name string) (*AutoAugment, error) {
	switch name {
	case "", "none":
		return nil, nil
	case "trivial":
		return &AutoAugment{kind: trivialAugment, name: name}, nil
	case "autoaugment-imagenet":
		return &AutoAugment{kind: autoAugment, name: name, policies: imagenetPolicy}, nil
	case "autoaugment-cifar10":
		return &AutoAugment{kind: autoAugment, name: name, policies: cifar10Policy}, nil
	}
	bad := func(why string) error {
		return &AutoAugmentError{Reason: why + " (got " + strconv.Quote(name) + ")"}
	}
	rest, ok := strings.CutPrefix(name, "rand-m")
	if !ok {
		return nil, bad("must be one of " + AutoAugmentPolicies)
	}
	ms, ns, ok := strings.Cut(rest, "-n")
	m, errM := strconv.Atoi(ms)
	n, errN := strconv.Atoi(ns)
	switch {
	case !ok || errM != nil || errN != nil || strconv.Itoa(m) != ms || strconv.Itoa(n) != ns:
		return nil, bad("must be rand-m<M>-n<N> with integers M and N for RandAugment, e.g. rand-m9-n2")
	case m < 0 || m >= randAugmentBins:
		return nil, bad(fmt.Sprintf("must have its RandAugment magnitude M in [0, %d], a bin of %d", randAugmentBins-1, randAugmentBins))
	case n < 1:
		return nil, bad("must have N >= 1 RandAugment ops an image")
	}
	return &AutoAugment{kind: randAugment, name: name, numOps: n, magnitude: m}, nil
}

// String is the policy's name as ParseAutoAugment reads it.
func (a *AutoAugment) String() string {
	if a == nil {
		return "none"
	}
	return a.name
}

// appliedOp is one operation a policy chose for an image, with its magnitude bin (-1 for an op without
// magnitudes) and signed magnitude.
type appliedOp struct {
	op        AugmentOp
	bin       int
	magnitude float64
}

// plan draws the operations for one h x w image, appending them to ops, in torchvision's order of draws:
// RandAugment draws, N times, the op (uniform) and, for a signed op, the sign; TrivialAugmentWide draws the
// op, then for an op with magnitudes the bin (uniform over 31) and the sign; AutoAugment draws the
// sub-policy (uniform over 25), then for each of its two steps whether it applies (its probability) and,
// if it does and is signed, the sign.
func (a *AutoAugment) plan(rng *rand.Rand, h, w int, ops []appliedOp) []appliedOp {
	switch a.kind {
	case randAugment:
		for range a.numOps {
			op := uniformOps[rng.IntN(len(uniformOps))]
			m, signed, ok := standardSpace.magnitude(op, a.magnitude, randAugmentBins, h, w)
			if signed {
				m = randomSign(m, rng)
			}
			ops = append(ops, appliedOp{op, binOf(ok, a.magnitude), m})
		}
	case trivialAugment:
		op := uniformOps[rng.IntN(len(uniformOps))]
		a := appliedOp{op: op, bin: -1}
		if _, _, ok := wideSpace.magnitude(op, 0, trivialAugmentBins, h, w); ok {
			a.bin = rng.IntN(trivialAugmentBins)
			m, signed, _ := wideSpace.magnitude(op, a.bin, trivialAugmentBins, h, w)
			if signed {
				m = randomSign(m, rng)
			}
			a.magnitude = m
		}
		ops = append(ops, a)
	case autoAugment:
		for _, step := range a.policies[rng.IntN(len(a.policies))] {
			if !(rng.Float64() <= step.prob) {
				continue
			}
			m, signed, ok := standardSpace.magnitude(step.op, step.bin, autoAugmentBins, h, w)
			if signed {
				m = randomSign(m, rng)
			}
			ops = append(ops, appliedOp{step.op, binOf(ok, step.bin), m})
		}
	}
	return ops
}

func binOf(hasMagnitude bool, bin int) int {
	if !hasMagnitude {
		return -1
	}
	return bin
}

// AugmentScratch holds the buffers of Apply; give each goroutine its own. The zero value is ready to use.
type AugmentScratch struct {
	tmp  Planes
	cols []float64 // warp's per-column products
	src  []int32   // warp's source pixel of each output pixel
	ops  []appliedOp
}

// Apply augments p in place with the operations the policy draws from rng for it (see plan for the
// order of draws). p has 1 or 3 channels.
func (a *AutoAugment) Apply(p *Planes, rng *rand.Rand, s *AugmentScratch) {
	p.check()
	s.ops = a.plan(rng, p.H, p.W, s.ops[:0])
	for _, o := range s.ops {
		ApplyOp(p, o.op, o.magnitude, s)
	}
}

// AutoAugment's learned sub-policies (Cubuk et al. 2019), as torchvision lists them: two steps each of
// (op, probability, magnitude bin of 10).
var imagenetPolicy = [][2]subPolicyOp{
	{{OpPosterize, 0.4, 8}, {OpRotate, 0.6, 9}},
	{{OpSolarize, 0.6, 5}, {OpAutoContrast, 0.6, 0}},
	{{OpEqualize, 0.8, 0}, {OpEqualize, 0.6, 0}},
	{{OpPosterize, 0.6, 7}, {OpPosterize, 0.6, 6}},
	{{OpEqualize, 0.4, 0}, {OpSolarize, 0.2, 4}},
	{{OpEqualize, 0.4, 0}, {OpRotate, 0.8, 8}},
	{{OpSolarize, 0.6, 3}, {OpEqualize, 0.6, 0}},
	{{OpPosterize, 0.8, 5}, {OpEqualize, 1.0, 0}},
	{{OpRotate, 0.2, 3}, {OpSolarize, 0.6, 8}},
	{{OpEqualize, 0.6, 0}, {OpPosterize, 0.4, 6}},
	{{OpRotate, 0.8, 8}, {OpColor, 0.4, 0}},
	{{OpRotate, 0.4, 9}, {OpEqualize, 0.6, 0}},
	{{OpEqualize, 0.0, 0}, {OpEqualize, 0.8, 0}},
	{{OpInvert, 0.6, 0}, {OpEqualize, 1.0, 0}},
	{{OpColor, 0.6, 4}, {OpContrast, 1.0, 8}},
	{{OpRotate, 0.8, 8}, {OpColor, 1.0, 2}},
	{{OpColor, 0.8, 8}, {OpSolarize, 0.8, 7}},
	{{OpSharpness, 0.4, 7}, {OpInvert, 0.6, 0}},
	{{OpShearX, 0.6, 5}, {OpEqualize, 1.0, 0}},
	{{OpColor, 0.4, 0}, {OpEqualize, 0.6, 0}},
	{{OpEqualize, 0.4, 0}, {OpSolarize, 0.2, 4}},
	{{OpSolarize, 0.6, 5}, {OpAutoContrast, 0.6, 0}},
	{{OpInvert, 0.6, 0}, {OpEqualize, 1.0, 0}},
	{{OpColor, 0.6, 4}, {OpContrast, 1.0, 8}},
	{{OpEqualize, 0.8, 0}, {OpEqualize, 0.6, 0}},
}

var cifar10Policy = [][2]subPolicyOp{
	{{OpInvert, 0.1, 0}, {OpContrast, 0.2, 6}},
	{{OpRotate, 0.7, 2}, {OpTranslateX, 0.3, 9}},
	{{OpSharpness, 0.8, 1}, {OpSharpness, 0.9, 3}},
	{{OpShearY, 0.5, 8}, {OpTranslateY, 0.7, 9}},
	{{OpAutoContrast, 0.5, 0}, {OpEqualize, 0.9, 0}},
	{{OpShearY, 0.2, 7}, {OpPosterize, 0.3, 7}},
	{{OpColor, 0.4, 3}, {OpBrightness, 0.6, 7}},
	{{OpSharpness, 0.3, 9}, {OpBrightness, 0.7, 9}},
	{{OpEqualize, 0.6, 0}, {OpEqualize, 0.5, 0}},
	{{OpContrast, 0.6, 7}, {OpSharpness, 0.6, 5}},
	{{OpColor, 0.7, 7}, {OpTranslateX, 0.5, 8}},
	{{OpEqualize, 0.3, 0}, {OpAutoContrast, 0.4, 0}},
	{{OpTranslateY, 0.4, 3}, {OpSharpness, 0.2, 6}},
	{{OpBrightness, 0.9, 6}, {OpColor, 0.2, 8}},
	{{OpSolarize, 0.5, 2}, {OpInvert, 0.0, 0}},
	{{OpEqualize, 0.2, 0}, {OpAutoContrast, 0.6, 0}},
	{{OpEqualize, 0.2, 0}, {OpEqualize, 0.6, 0}},
	{{OpColor, 0.9, 9}, {OpEqualize, 0.6, 0}},
	{{OpAutoContrast, 0.8, 0}, {OpSolarize, 0.2, 8}},
	{{OpBrightness, 0.1, 3}, {OpColor, 0.7, 0}},
	{{OpSolarize, 0.4, 5}, {OpAutoContrast, 0.9, 0}},
	{{OpTranslateY, 0.9, 9}, {OpTranslateY, 0.7, 9}},
	{{OpAutoContrast, 0.9, 0}, {OpSolarize, 0.8, 3}},
	{{OpEqualize, 0.8, 0}, {OpInvert, 0.1, 0}},
	{{OpTranslateY, 0.7, 9}, {OpAutoContrast, 0.9, 0}},
}
