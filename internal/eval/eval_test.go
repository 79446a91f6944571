package eval

import (
	"bytes"
	"image"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"resnet/internal/cpu"
	"resnet/internal/dataset"
	"resnet/internal/model"
	"resnet/internal/vision"
)

// patternSource is a Source of 3 x h x w images whose pixel values encode their position, so crops
// can be checked value by value.
type patternSource struct{ n, h, w int }

func (s patternSource) Len() int                  { return s.n }
func (s patternSource) NumClasses() int           { return 10 }
func (s patternSource) ImageShape() (c, h, w int) { return 3, s.h, s.w }
func (s patternSource) Get(i int, dst []uint8) (int, error) {
	for c := range 3 {
		for y := range s.h {
			for x := range s.w {
				dst[(c*s.h+y)*s.w+x] = uint8(1 + c*64 + y*s.w + x + i)
			}
		}
	}
	return i % 10, nil
}

func TestTenCropOfFixedSizeImages(t *testing.T) {
	const h, w, pad = 8, 8, dataset.CIFARPad
	set := &Set{Source: patternSource{n: 3, h: h, w: w}, Mean: [3]float32{1, 2, 3}, Std: [3]float32{2, 4, 8}}
	p := tenCropPipeline{set}
	if c, ph, pw := p.OutputShape(); c != 30 || ph != h || pw != w {
		t.Fatalf("OutputShape %d x %d x %d, want 30 x 8 x 8", c, ph, pw)
	}
	dst := make([]float32, 30*h*w)
	label, err := p.NewWorker().Load(1, nil, dst)
	if err != nil || label != 1 {
		t.Fatalf("Load: label %d, %v", label, err)
	}
	img := make([]uint8, 3*h*w)
	patternSource{n: 3, h: h, w: w}.Get(1, img)
	// pixel of the padded image at (x, y), zero outside the image.
	padded := func(c, x, y int) float32 {
		x, y = x-pad, y-pad
		if x < 0 || y < 0 || x >= w || y >= h {
			return 0
		}
		return float32(img[(c*h+y)*w+x])
	}
	offsets := [5][2]int{{0, 0}, {2 * pad, 0}, {0, 2 * pad}, {2 * pad, 2 * pad}, {pad, pad}}
	for v := range 10 {
		o := offsets[v%5]
		for c := range 3 {
			for y := range h {
				for x := range w {
					sx := x
					if v >= 5 {
						sx = w - 1 - x
					}
					want := (padded(c, o[0]+sx, o[1]+y) - set.Mean[c]) / set.Std[c]
					if got := dst[((v*3+c)*h+y)*w+x]; got != want {
						t.Fatalf("view %d channel %d (%d,%d): %v, want %v", v, c, x, y, got, want)
					}
				}
			}
		}
	}
}

func TestScoreAndAverage(t *testing.T) {
	// Three images, four classes.
	p := &Probs{Classes: 4, Labels: []int32{0, 2, 3}, P: []float32{
		0.7, 0.1, 0.1, 0.1, // right
		0.4, 0.3, 0.2, 0.1, // true class third: top-1 miss, top-5 hit
		0.25, 0.25, 0.25, 0.25, // a four-way tie: classes 0-2 rank before the true class 3
	}}
	s, classes, err := Score(p, []string{"a", "b", "c", "d"})
	if err != nil {
		t.Fatal(err)
	}
	if s.N != 3 || math.Abs(s.Top1Err-2.0/3) > 1e-12 || s.Top5Err != 0 {
		t.Errorf("scores %+v, want n 3, top-1 2/3, top-5 0", s)
	}
	wantLoss := -(math.Log(0.7) + math.Log(0.2) + math.Log(0.25)) / 3
	if math.Abs(float64(s.Loss)-wantLoss) > 1e-6 {
		t.Errorf("loss %v, want %v", s.Loss, wantLoss)
	}
	if classes[0].N != 1 || classes[0].Top1Err != 0 || classes[2].Top1Err != 1 || classes[1].N != 0 || classes[3].Name != "d" {
		t.Errorf("per-class %+v", classes)
	}
	if w := WorstClasses(classes); w[0].Class != 2 || w[1].Class != 3 {
		t.Errorf("worst classes %+v, want 2 then 3 first", w)
	}

	q := &Probs{Classes: 4, Labels: p.Labels, P: []float32{
		0.1, 0.8, 0.05, 0.05,
		0.0, 0.0, 1.0, 0.0,
		0.0, 0.0, 0.0, 1.0,
	}}
	avg, err := Average([]*Probs{p, q})
	if err != nil {
		t.Fatal(err)
	}
	for i := range avg.P {
		if want := (p.P[i] + q.P[i]) / 2; math.Abs(float64(avg.P[i]-want)) > 1e-7 {
			t.Fatalf("averaged probability %d: %v, want %v", i, avg.P[i], want)
		}
	}
	if s, _, _ := Score(avg, nil); math.Abs(s.Top1Err-1.0/3) > 1e-12 {
		t.Errorf("ensemble top-1 %v, want 1/3 (the first image is now wrong, the others right)", s.Top1Err)
	}
	bad := &Probs{Classes: 4, Labels: []int32{0, 2, 1}, P: q.P}
	if _, err := Average([]*Probs{p, bad}); err == nil || !strings.Contains(err.Error(), "different data") {
		t.Errorf("Average of different labels: %v", err)
	}
	if _, _, err := Score(&Probs{Classes: 4}, nil); err == nil {
		t.Error("Score of no images succeeded")
	}
}

// tinyNet is a small CIFAR-family residual net for 32x32 synthetic images, with trained-looking BN
// statistics.
func tinyNet(t *testing.T, capacity int) *model.Net {
	t.Helper()
	s := model.Spec{
		Name: "tiny", Family: model.CIFAR, Block: model.Basic, Layers: []int{1, 1}, Widths: []int{4, 8},
		Residual: true, Shortcut: 'B', StemWidth: 4, InChannels: 3, InputSize: 32, NumClasses: 10,
	}
	net, err := model.Build(cpu.New(), s, capacity)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(net.Free)
	if err := net.Init(3); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, capacity*3*32*32)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	if err := net.Forward(x, capacity, true); err != nil {
		t.Fatal(err)
	}
	return net
}

func syntheticSet(t *testing.T, n int) (*Set, dataset.Pipeline) {
	t.Helper()
	src, err := dataset.NewSynthetic(5, n, "test")
	if err != nil {
		t.Fatal(err)
	}
	norm := dataset.Normalization{Mean: [3]float32{120, 110, 100}, Std: [3]float32{60, 50, 40}}
	center, err := dataset.SourcePipeline(src, false, norm)
	if err != nil {
		t.Fatal(err)
	}
	return &Set{Source: src, Mean: norm.Mean, Std: norm.Std}, center
}

// probsOf is the softmax of net's logits for x (nb images), computed here from Forward and Logits.
func probsOf(t *testing.T, net *model.Net, x []float32, nb int) [][]float64 {
	t.Helper()
	if err := net.Forward(x, nb, false); err != nil {
		t.Fatal(err)
	}
	logits, err := net.Logits(nil)
	if err != nil {
		t.Fatal(err)
	}
	k := net.Spec.NumClasses
	out := make([][]float64, nb)
	for i := range out {
		out[i] = make([]float64, k)
		addSoftmax(out[i], logits[i*k:(i+1)*k])
	}
	return out
}

// The protocols against the same numbers computed directly from the net: 1-crop is the softmax of the
// image, ten-crop the mean over its ten crops, and multi-scale at the training size the mean over the
// image and its mirror image.
func TestProtocolsAverageTheirViews(t *testing.T) {
	const n = 5
	set, center := syntheticSet(t, n)
	net := tinyNet(t, 20)
	img := make([]float32, 3*32*32)
	w := center.NewWorker()
	tc := tenCropPipeline{set}.NewWorker()
	views := make([]float32, 10*len(img))

	one, err := Collect(net, center, set, Options{Protocol: Protocol{Kind: CenterCrop}, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	ten, err := Collect(net, center, set, Options{Protocol: Protocol{Kind: TenCrop}, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := Collect(net, center, set, Options{Protocol: Protocol{Kind: MultiScale, Scales: []int{32}}, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*Probs{one, ten, ms} {
		if len(p.Labels) != n || len(p.P) != n*10 {
			t.Fatalf("%d labels and %d probabilities, want %d and %d", len(p.Labels), len(p.P), n, n*10)
		}
	}
	near := func(what string, i int, got []float32, want []float64) {
		t.Helper()
		for j := range want {
			if math.Abs(float64(got[j])-want[j]) > 1e-5 {
				t.Fatalf("%s image %d class %d: %v, want %v", what, i, j, got[j], want[j])
			}
		}
	}
	for i := range n {
		label, err := w.Load(i, nil, img)
		if err != nil {
			t.Fatal(err)
		}
		if int(one.Labels[i]) != label || ten.Labels[i] != one.Labels[i] || ms.Labels[i] != one.Labels[i] {
			t.Fatalf("image %d: labels %d/%d/%d, want %d", i, one.Labels[i], ten.Labels[i], ms.Labels[i], label)
		}
		near("1-crop", i, one.P[i*10:(i+1)*10], probsOf(t, net, img, 1)[0])

		if _, err := tc.Load(i, nil, views); err != nil {
			t.Fatal(err)
		}
		want := make([]float64, 10)
		for _, p := range probsOf(t, net, views, 10) {
			for j := range want {
				want[j] += p[j] / 10
			}
		}
		near("10-crop", i, ten.P[i*10:(i+1)*10], want)

		pair := make([]float32, 2*len(img))
		copy(pair, img)
		for c := range 3 {
			for y := range 32 {
				for x := range 32 {
					pair[len(img)+(c*32+y)*32+x] = img[(c*32+y)*32+31-x]
				}
			}
		}
		pp := probsOf(t, net, pair, 2)
		for j := range want {
			want[j] = (pp[0][j] + pp[1][j]) / 2
		}
		near("multi-scale", i, ms.P[i*10:(i+1)*10], want)
	}

	// Larger scales run the fully-convolutional net on the bigger image.
	ms2, err := Collect(net, center, set, Options{Protocol: Protocol{Kind: MultiScale, Scales: []int{32, 48, 64}}, Workers: 1, MaxCachedValues: 1})
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, v := range ms2.P {
		sum += float64(v)
	}
	if math.Abs(sum-n) > 1e-4 {
		t.Errorf("multi-scale probabilities sum to %v over %d images", sum, n)
	}
	if _, err := Collect(net, center, set, Options{Protocol: Protocol{Kind: "best-crop"}}); err == nil {
		t.Error("an unknown protocol was accepted")
	}
}

// Folder images: a bad file is skipped (or stops a strict run), and the multi-scale and ten-crop views of
// a good one are those of the vision package's transforms.
func TestFolderSetSkipsBadImages(t *testing.T) {
	dir := t.TempDir()
	good := &vision.Image{W: 48, H: 40, Pix: make([]uint8, 48*40*3)}
	for i := range good.Pix {
		good.Pix[i] = uint8(i * 7)
	}
	if err := os.WriteFile(filepath.Join(dir, "good.png"), encodePNG(t, good), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.png"), []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	set := &Set{
		Files: &FolderFiles{Dir: dir, Index: &dataset.FolderIndex{Classes: []string{"a", "b"}, Files: []string{"good.png", "bad.png", "good.png"}, Labels: []int32{1, 0, 1}}},
		Mean:  vision.ImageNetMean, Std: vision.ImageNetStd, Resize: 36, Crop: 32,
	}
	net := tinyNet(t, 20)
	var skipped []string
	opt := Options{Workers: 2, OnSkip: func(b []*dataset.BadExampleError) {
		for _, e := range b {
			skipped = append(skipped, e.Path)
		}
	}}
	for _, proto := range []Protocol{{Kind: TenCrop}, {Kind: MultiScale, Scales: []int{32, 40}}} {
		skipped = nil
		opt.Protocol = proto
		p, err := Collect(net, nil, set, opt)
		if err != nil {
			t.Fatalf("%v: %v", proto, err)
		}
		if len(p.Labels) != 2 || p.Skipped != 1 || len(skipped) != 1 || filepath.Base(skipped[0]) != "bad.png" {
			t.Fatalf("%v: %d images, %d skipped (%v); want 2 and bad.png", proto, len(p.Labels), p.Skipped, skipped)
		}
		for j := range 10 {
			if p.P[j] != p.P[10+j] {
				t.Fatalf("%v: the same image scored twice differently", proto)
			}
		}
	}
	opt.Strict = true
	opt.Protocol = Protocol{Kind: MultiScale, Scales: []int{32}}
	if _, err := Collect(net, nil, set, opt); err == nil || !strings.Contains(err.Error(), "bad.png") {
		t.Errorf("strict multi-scale: %v, want an error naming bad.png", err)
	}
}

func encodePNG(t *testing.T, img *vision.Image) []byte {
	t.Helper()
	m := image.NewNRGBA(image.Rect(0, 0, img.W, img.H))
	for p := range img.W * img.H {
		copy(m.Pix[4*p:4*p+3], img.Pix[3*p:3*p+3])
		m.Pix[4*p+3] = 255
	}
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// RecomputeBN leaves each running statistic at the average of the batch statistics of the first training
// batches in the loader's shuffled order, and the BN momentum as it was.
func TestRecomputeBN(t *testing.T) {
	const batch, batches, seed = 4, 2, 9
	src, err := dataset.NewSynthetic(5, 20, "train")
	if err != nil {
		t.Fatal(err)
	}
	train, err := dataset.SourcePipeline(src, true, dataset.Normalization{Mean: [3]float32{120, 110, 100}, Std: [3]float32{60, 50, 40}})
	if err != nil {
		t.Fatal(err)
	}
	stats := func(net *model.Net) []float32 {
		var out []float32
		for _, p := range net.Params {
			if p.Kind == model.BNRunningMean || p.Kind == model.BNRunningVar {
				v, err := net.Get(p)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, v...)
			}
		}
		return out
	}

	// By hand: each batch's own statistics (momentum 1), averaged.
	ref := tinyNet(t, batch)
	if err := ref.SetBNMomentum(1); err != nil {
		t.Fatal(err)
	}
	l, err := dataset.NewPipelineLoader(train, dataset.LoaderOptions{BatchSize: batch, Shuffle: true, DropLast: true, Seed: seed, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Start(0, 0); err != nil {
		t.Fatal(err)
	}
	var want []float64
	for range batches {
		b, err := l.Next()
		if err != nil {
			t.Fatal(err)
		}
		if err := ref.Forward(b.X, b.N, true); err != nil {
			t.Fatal(err)
		}
		l.Release(b)
		s := stats(ref)
		if want == nil {
			want = make([]float64, len(s))
		}
		for i, v := range s {
			want[i] += float64(v) / batches
		}
	}

	net := tinyNet(t, batch)
	before := stats(net)
	if err := RecomputeBN(net, train, batches, batch, seed, 2); err != nil {
		t.Fatal(err)
	}
	got := stats(net)
	changed := false
	for i := range got {
		if math.Abs(float64(got[i])-want[i]) > 1e-5*(1+math.Abs(want[i])) {
			t.Fatalf("statistic %d: %v after RecomputeBN, want the batch average %v", i, got[i], want[i])
		}
		changed = changed || got[i] != before[i]
	}
	if !changed {
		t.Error("RecomputeBN left every statistic unchanged")
	}
	if m := net.BNMomentum(); math.Abs(m-0.1) > 1e-7 {
		t.Errorf("BN momentum %v after RecomputeBN, want 0.1 back", m)
	}
	if err := RecomputeBN(net, train, 6, batch, seed, 2); err == nil || !strings.Contains(err.Error(), "has 5") {
		t.Errorf("6 batches of 4 from 20 images: %v", err)
	}
	if err := RecomputeBN(net, train, 1, 8, seed, 2); err == nil {
		t.Error("a batch over the net's capacity was accepted")
	}
}
