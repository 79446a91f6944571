package vision

import (
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestParseAutoAugment(t *testing.T) {
	for _, tt := range []struct {
		name       string
		kind       policyKind
		n, m       int
		wantReason string
	}{
		{name: "none"},
		{name: ""},
		{name: "rand-m9-n2", kind: randAugment, n: 2, m: 9},
		{name: "rand-m0-n1", kind: randAugment, n: 1, m: 0},
		{name: "rand-m30-n4", kind: randAugment, n: 4, m: 30},
		{name: "trivial", kind: trivialAugment},
		{name: "autoaugment-imagenet", kind: autoAugment},
		{name: "autoaugment-cifar10", kind: autoAugment},
		{name: "rand-m31-n2", wantReason: `must have its RandAugment magnitude M in [0, 30], a bin of 31 (got "rand-m31-n2")`},
		{name: "rand-m-1-n2", wantReason: `must have its RandAugment magnitude M in [0, 30], a bin of 31 (got "rand-m-1-n2")`},
		{name: "rand-m09-n2", wantReason: `must be rand-m<M>-n<N> with integers M and N for RandAugment, e.g. rand-m9-n2 (got "rand-m09-n2")`},
		{name: "rand-m9-n0", wantReason: `must have N >= 1 RandAugment ops an image (got "rand-m9-n0")`},
		{name: "rand-m9", wantReason: `must be rand-m<M>-n<N> with integers M and N for RandAugment, e.g. rand-m9-n2 (got "rand-m9")`},
		{name: "ra", wantReason: `must be one of ` + AutoAugmentPolicies + ` (got "ra")`},
		{name: "autoaugment-svhn", wantReason: `must be one of ` + AutoAugmentPolicies + ` (got "autoaugment-svhn")`},
	} {
		a, err := ParseAutoAugment(tt.name)
		if tt.wantReason != "" {
			ae, ok := err.(*AutoAugmentError)
			if !ok || ae.Reason != tt.wantReason {
				t.Errorf("%q: error %v, want reason %s", tt.name, err, tt.wantReason)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.name, err)
			continue
		}
		if tt.kind == 0 {
			if a != nil || a.String() != "none" {
				t.Errorf("%q: got policy %v, want none", tt.name, a)
			}
			continue
		}
		if a == nil || a.kind != tt.kind || a.numOps != tt.n || a.magnitude != tt.m || a.String() != tt.name {
			t.Errorf("%q: got %+v", tt.name, a)
		}
	}
}

// opCount counts what a policy drew over many images: each (op, bin) with how many times its magnitude
// was negative.
type opCount struct {
	n, negative int
}

type opKey struct {
	op  AugmentOp
	bin int
}

// drawPlans draws the plans of images h x w images; each has opsEach ops unless that is -1.
func drawPlans(t *testing.T, policy string, images, h, w, opsEach int) map[opKey]*opCount {
	t.Helper()
	a, err := ParseAutoAugment(policy)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 11))
	counts := map[opKey]*opCount{}
	var ops []appliedOp
	for i := range images {
		ops = a.plan(rng, h, w, ops[:0])
		if opsEach >= 0 && len(ops) != opsEach {
			t.Fatalf("%s: image %d got %d ops, want %d", policy, i, len(ops), opsEach)
		}
		for _, o := range ops {
			k := opKey{o.op, o.bin}
			if counts[k] == nil {
				counts[k] = &opCount{}
			}
			c := counts[k]
			c.n++
			if math.Signbit(o.magnitude) {
				c.negative++
			}
			// The magnitude is the bin's, with a sign only where the op takes one.
			m, signed, ok := standardSpace.magnitude(o.op, o.bin, randAugmentBins, h, w)
			switch a.kind {
			case trivialAugment:
				m, signed, ok = wideSpace.magnitude(o.op, o.bin, trivialAugmentBins, h, w)
			case autoAugment:
				m, signed, ok = standardSpace.magnitude(o.op, o.bin, autoAugmentBins, h, w)
			}
			if !ok {
				m = 0
			}
			if o.magnitude != m && !(signed && o.magnitude == -m) {
				t.Fatalf("%s: %v bin %d has magnitude %v, want %v (signed %v)", policy, o.op, o.bin, o.magnitude, m, signed)
			}
		}
	}
	return counts
}

// within reports whether a count is within 5 standard deviations of a binomial expectation of n draws
// at probability p (the seed is fixed, so this is deterministic; the margin only keeps it meaningful).
func within(count, n int, p float64) bool {
	mean := float64(n) * p
	return math.Abs(float64(count)-mean) <= 5*math.Sqrt(mean*(1-p))+1
}

// checkSigns checks that signed ops came with either sign equally often (at bin 0 too: torchvision
// negates 0 into -0) and unsigned ones never negative.
func checkSigns(t *testing.T, policy string, counts map[opKey]*opCount, h, w int) {
	t.Helper()
	for k, c := range counts {
		_, signed, _ := standardSpace.magnitude(k.op, 0, randAugmentBins, h, w)
		if signed {
			if !within(c.negative, c.n, 0.5) {
				t.Errorf("%s: %v bin %d negative %d of %d times, want half", policy, k.op, k.bin, c.negative, c.n)
			}
		} else if c.negative != 0 {
			t.Errorf("%s: unsigned %v negative %d times", policy, k.op, c.negative)
		}
	}
}

// RandAugment draws N ops an image, each uniformly from its 14, at bin M, signed ops with either sign
// equally often.
func TestRandAugmentDrawsUniformOps(t *testing.T) {
	const images, h, w = 20000, 224, 224
	counts := drawPlans(t, "rand-m9-n2", images, h, w, 2)
	for _, op := range uniformOps {
		bin := 9
		if _, _, ok := standardSpace.magnitude(op, 0, 31, h, w); !ok {
			bin = -1
		}
		c := counts[opKey{op, bin}]
		if c == nil || !within(c.n, 2*images, 1.0/14) {
			t.Errorf("%v drawn %v times of %d, want 1/14", op, c, 2*images)
		}
	}
	if len(counts) != len(uniformOps) {
		t.Errorf("drew %d distinct (op, bin), want %d", len(counts), len(uniformOps))
	}
	checkSigns(t, "rand-m9-n2", counts, h, w)
}

// TrivialAugmentWide draws one op of 14 uniformly and, for ops with magnitudes, a bin of 31 uniformly.
func TestTrivialAugmentDrawsUniformOpsAndBins(t *testing.T) {
	const images, h, w = 40000, 32, 32
	counts := drawPlans(t, "trivial", images, h, w, 1)
	for _, op := range uniformOps {
		total := 0
		_, _, hasBins := wideSpace.magnitude(op, 0, 31, h, w)
		for k, c := range counts {
			if k.op != op {
				continue
			}
			total += c.n
			if hasBins != (k.bin >= 0) {
				t.Errorf("%v drawn with bin %d", op, k.bin)
			}
		}
		if !within(total, images, 1.0/14) {
			t.Errorf("%v drawn %d times of %d, want 1/14", op, total, images)
		}
		if !hasBins {
			continue
		}
		for bin := range trivialAugmentBins {
			c := counts[opKey{op, bin}]
			if c == nil || !within(c.n, total, 1.0/31) {
				t.Errorf("%v bin %d drawn %v times of %d, want 1/31", op, bin, c, total)
			}
		}
	}
	checkSigns(t, "trivial", counts, h, w)
}

// AutoAugment draws one of its 25 sub-policies uniformly and applies each step with its probability: each
// (op, bin) appears as often as the sum of its steps' probabilities over 25 says.
func TestAutoAugmentDrawsSubPoliciesWithTheirProbabilities(t *testing.T) {
	const images, h, w = 25000, 32, 32
	for policy, table := range map[string][][2]subPolicyOp{"autoaugment-imagenet": imagenetPolicy, "autoaugment-cifar10": cifar10Policy} {
		counts := drawPlans(t, policy, images, h, w, -1)
		want := map[opKey]float64{}
		for _, sub := range table {
			for _, step := range sub {
				bin := step.bin
				if _, _, ok := standardSpace.magnitude(step.op, 0, 10, h, w); !ok {
					bin = -1
				}
				want[opKey{step.op, bin}] += step.prob / float64(len(table))
			}
		}
		for k, p := range want {
			got := 0
			if c := counts[k]; c != nil {
				got = c.n
			}
			if !within(got, images, p) {
				t.Errorf("%s: %v bin %d applied %d times in %d images, want %.4f of them", policy, k.op, k.bin, got, images, p)
			}
		}
		for k := range counts {
			if _, ok := want[k]; !ok {
				t.Errorf("%s: drew %v bin %d, which no sub-policy has", policy, k.op, k.bin)
			}
		}
		checkSigns(t, policy, counts, h, w)
	}
}

func testPicture(w, h int) *Image {
	img := &Image{}
	img.Resize(w, h)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range img.Pix {
		img.Pix[i] = uint8(rng.IntN(256))
	}
	return img
}

// The 8-bit planes path (crop to planes, normalise) gives exactly what the one-pass transforms give, so
// turning auto-augment on changes nothing but the augmentation.
func TestPlanesPathEqualsDirectPath(t *testing.T) {
	src := testPicture(57, 43)
	var s1, s2 Scratch
	var p Planes
	const size = 24
	direct := make([]float32, 3*size*size)
	viaPlanes := make([]float32, 3*size*size)
	for _, flip := range []bool{false, true} {
		r := Rect{5, 7, 40, 30}
		if err := CropToCHW(direct, src, r, size, flip, ImageNetMean, ImageNetStd, &s1); err != nil {
			t.Fatal(err)
		}
		if err := CropToPlanes(&p, src, r, size, flip, &s2); err != nil {
			t.Fatal(err)
		}
		if err := PlanesToCHW(viaPlanes, &p, ImageNetMean, ImageNetStd, &s2); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(direct, viaPlanes) {
			t.Errorf("flip %v: CropToPlanes + PlanesToCHW differs from CropToCHW", flip)
		}
		rngA, rngB := rand.New(rand.NewPCG(1, 1)), rand.New(rand.NewPCG(1, 1))
		if err := TrainScaleAugment(direct, src, rngA, 30, 50, size, flip, ImageNetMean, ImageNetStd, &s1); err != nil {
			t.Fatal(err)
		}
		if err := TrainScaleAugmentPlanes(&p, src, rngB, 30, 50, size, flip, &s2); err != nil {
			t.Fatal(err)
		}
		if err := PlanesToCHW(viaPlanes, &p, ImageNetMean, ImageNetStd, &s2); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(direct, viaPlanes) {
			t.Errorf("flip %v: TrainScaleAugmentPlanes + PlanesToCHW differs from TrainScaleAugment", flip)
		}
	}
	if err := CropToPlanes(&p, src, Rect{50, 0, 10, 10}, size, false, &s2); err == nil {
		t.Error("a crop outside the image was accepted")
	}
	if err := PlanesToCHW(make([]float32, 10), &p, ImageNetMean, ImageNetStd, &s2); err == nil {
		t.Error("a short output was accepted")
	}
}

// Applying a policy allocates nothing once the scratch has grown.
func TestAutoAugmentApplyDoesNotAllocate(t *testing.T) {
	for _, name := range []string{"rand-m9-n2", "trivial", "autoaugment-imagenet"} {
		a, _ := ParseAutoAugment(name)
		var p Planes
		p.Resize(3, 32, 32)
		rng := rand.New(rand.NewPCG(5, 6))
		var s AugmentScratch
		for range 50 {
			a.Apply(&p, rng, &s)
		}
		if allocs := testing.AllocsPerRun(200, func() { a.Apply(&p, rng, &s) }); allocs > 0 {
			t.Errorf("%s: %.1f allocations per image", name, allocs)
		}
	}
}

// The erasing box lies inside the image, covers 2% to 33% of it with a height-to-width ratio in
// [0.3, 3.3] (up to the rounding of its sides), and is not found on an image too small for any.
func TestErasingRect(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	const h, w = 224, 160
	var fractions []float64
	for range 5000 {
		r, ok := ErasingRect(h, w, rng)
		if !ok {
			t.Fatal("no box found on a 224x160 image")
		}
		if !r.In(w, h) || r.H >= h || r.W >= w {
			t.Fatalf("box %+v outside the %dx%d image", r, w, h)
		}
		f := float64(r.W*r.H) / (h * w)
		ratio := float64(r.H) / float64(r.W)
		if f < 0.015 || f > 0.36 || ratio < 0.25 || ratio > 3.6 {
			t.Fatalf("box %+v: area %.3f of the image, ratio %.2f", r, f, ratio)
		}
		fractions = append(fractions, f)
	}
	var mean float64
	for _, f := range fractions {
		mean += f / float64(len(fractions))
	}
	// Most attempts fit on this image, so the area is close to uniform in [0.02, 0.33] (mean 0.175).
	if math.Abs(mean-0.175) > 0.02 {
		t.Errorf("mean erased fraction %.3f, want about 0.175", mean)
	}
	// A 1-pixel-wide image fits only boxes 0 pixels wide.
	for range 100 {
		if r, ok := ErasingRect(50, 1, rng); ok && r.W != 0 {
			t.Fatalf("box %+v on a 1x50 image", r)
		}
	}
}

func TestRandomErasingProbability(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 3))
	const c, h, w, n = 3, 16, 16, 4000
	chw := make([]float32, c*h*w)
	erased := 0
	for range n {
		for i := range chw {
			chw[i] = 1
		}
		RandomErasing(chw, c, h, w, 0.25, rng)
		if slices.Contains(chw, 0) {
			erased++
		}
	}
	if !within(erased, n, 0.25) {
		t.Errorf("erased %d of %d images, want a quarter", erased, n)
	}
}

// BenchmarkAutoAugment224 is one policy's work on a 224x224 image, per image.
func BenchmarkAutoAugment224(b *testing.B) {
	for _, name := range []string{"rand-m9-n2", "trivial", "autoaugment-imagenet"} {
		b.Run(name, func(b *testing.B) {
			a, _ := ParseAutoAugment(name)
			src := testPicture(224*3, 224)
			var p Planes
			rng := rand.New(rand.NewPCG(1, 2))
			var s AugmentScratch
			b.ReportAllocs()
			for b.Loop() {
				p.Resize(3, 224, 224)
				copy(p.Pix, src.Pix)
				a.Apply(&p, rng, &s)
			}
			reportImagesPerSecond(b)
		})
	}
}

// fma32 rounds a*b + c once, to the nearest float32 (ties to even), as the exact sum says; the cases
// include sums that lie a hair off a float32 tie, where rounding to float64 first would land on the tie.
func TestFMA32RoundsOnce(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 2))
	exact := func(a, b, c float32) float32 {
		x := new(big.Float).SetPrec(200).SetFloat64(float64(a))
		x.Mul(x, new(big.Float).SetPrec(200).SetFloat64(float64(b)))
		x.Add(x, new(big.Float).SetPrec(200).SetFloat64(float64(c)))
		f, _ := x.Float32()
		return f
	}
	check := func(a, b, c float32) {
		if got, want := fma32(a, b, c), exact(a, b, c); got != want {
			t.Fatalf("fma32(%v, %v, %v) = %v, want %v", a, b, c, got, want)
		}
	}
	ties := 0
	for range 100000 {
		a := float32(rng.NormFloat64() * math.Pow(2, float64(rng.IntN(40)-20)))
		b := float32(rng.NormFloat64() * math.Pow(2, float64(rng.IntN(40)-20)))
		c := float32(rng.NormFloat64() * math.Pow(2, float64(rng.IntN(40)-20)))
		check(a, b, c)
		// a*b a hair off 0.5 plus an integer c in [2^23, 2^24), where float32's ties are the halves: when
		// the hair is under float64's resolution there, the float64 sum lands on the tie.
		x := float32(1 + rng.Float64())
		y := float32(0.5 / float64(x))
		z := float32(1<<23 + rng.IntN(1<<23))
		if s := float64(x)*float64(y) + float64(z); math.Float64bits(s)&(1<<29-1) == 1<<28 {
			ties++
		}
		check(x, y, z)
		check(a, b, -a*b)
	}
	if ties < 1000 {
		t.Errorf("only %d of the cases landed on a float32 tie in float64", ties)
	}
	check(1, 0x1p-149, 0) // float32's smallest subnormal
	check(0x1p-75, 0x1p-75, 0x1p-149)
}
