package dataset

import (
	"bytes"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

func mustSynthetic(t testing.TB, seed int64, n int, split string) *Synthetic {
	t.Helper()
	s, err := NewSynthetic(seed, n, split)
	if err != nil {
		t.Fatalf("NewSynthetic(%d, %d, %q): %v", seed, n, split, err)
	}
	return s
}

func getImage(t testing.TB, src Source, i int) ([]uint8, int) {
	t.Helper()
	c, h, w := src.ImageShape()
	img := make([]uint8, c*h*w)
	label, err := src.Get(i, img)
	if err != nil {
		t.Fatalf("Get(%d): %v", i, err)
	}
	return img, label
}

func TestNewSyntheticRejectsBadArguments(t *testing.T) {
	for _, tc := range []struct {
		n     int
		split string
		want  string
	}{
		{0, SplitTrain, `dataset: synthetic train size must be > 0 (got 0)`},
		{10, "tain", `dataset: synthetic split must be "train", "val" or "test" (got "tain")`},
	} {
		_, err := NewSynthetic(1, tc.n, tc.split)
		if err == nil || err.Error() != tc.want {
			t.Errorf("NewSynthetic(1, %d, %q) error = %v, want %q", tc.n, tc.split, err, tc.want)
		}
	}
	s := mustSynthetic(t, 1, 10, SplitTrain)
	if _, err := s.Get(10, make([]uint8, 3*32*32)); err == nil || err.Error() != "dataset: synthetic train index 10 out of range [0, 10)" {
		t.Errorf("Get(10) error = %v", err)
	}
	if _, err := s.Get(0, make([]uint8, 5)); err == nil || err.Error() != "dataset: synthetic train example 0: destination holds 5 bytes, want 3072" {
		t.Errorf("Get into short buffer error = %v", err)
	}
}

func TestSyntheticIsDeterministic(t *testing.T) {
	a := mustSynthetic(t, 7, 100, SplitTrain)
	b := mustSynthetic(t, 7, 5000, SplitTrain) // the size does not change example i
	other := mustSynthetic(t, 8, 100, SplitTrain)
	differ := 0
	for _, i := range []int{0, 1, 9, 10, 57, 99} {
		x, lx := getImage(t, a, i)
		y, ly := getImage(t, b, i)
		if !bytes.Equal(x, y) || lx != ly {
			t.Errorf("example %d differs between two sources with the same seed", i)
		}
		again, la := getImage(t, a, i)
		if !bytes.Equal(x, again) || lx != la {
			t.Errorf("example %d differs between two Get calls", i)
		}
		if z, _ := getImage(t, other, i); !bytes.Equal(x, z) {
			differ++
		}
	}
	if differ != 6 {
		t.Errorf("seeds 7 and 8 share %d of 6 examples, want none", 6-differ)
	}
}

func TestSyntheticSplitsDiffer(t *testing.T) {
	train := mustSynthetic(t, 1, 200, SplitTrain)
	test := mustSynthetic(t, 1, 200, SplitTest)
	seen := map[string]bool{}
	for i := range 200 {
		x, _ := getImage(t, train, i)
		seen[string(x)] = true
	}
	for i := range 200 {
		if x, _ := getImage(t, test, i); seen[string(x)] {
			t.Fatalf("test example %d is also a train example", i)
		}
	}
	if len(seen) != 200 {
		t.Errorf("200 train examples hold only %d distinct images", len(seen))
	}
}

func TestSyntheticLabelsAreBalanced(t *testing.T) {
	s := mustSynthetic(t, 3, 1000, SplitTrain)
	var counts [10]int
	for i := range s.Len() {
		_, label := getImage(t, s, i)
		if label != s.Label(i) {
			t.Fatalf("Get(%d) label %d, Label(%d) = %d", i, label, i, s.Label(i))
		}
		counts[label]++
	}
	for k, c := range counts {
		if c != 100 {
			t.Errorf("class %d (%s) has %d of 1000 examples, want 100", k, SyntheticClassNames[k], c)
		}
	}
	// The assignment is shuffled, not i%10.
	periodic := 0
	for i := range 100 {
		if s.Label(i) == i%10 {
			periodic++
		}
	}
	if periodic > 30 {
		t.Errorf("%d of the first 100 labels equal i%%10; the order should be shuffled", periodic)
	}
}

func TestSyntheticPixelsUseTheRange(t *testing.T) {
	s := mustSynthetic(t, 5, 300, SplitTrain)
	var hist [256]int
	for i := range s.Len() {
		img, _ := getImage(t, s, i)
		lo, hi := img[0], img[0]
		for _, v := range img {
			hist[v]++
			lo, hi = min(lo, v), max(hi, v)
		}
		if int(hi)-int(lo) < 60 {
			t.Errorf("example %d spans only pixel values %d..%d", i, lo, hi)
		}
	}
	used, total, clipped := 0, 0, hist[0]+hist[255]
	for _, c := range hist {
		total += c
		if c > 0 {
			used++
		}
	}
	if used < 250 {
		t.Errorf("only %d of 256 pixel values occur", used)
	}
	if frac := float64(clipped) / float64(total); frac > 0.05 {
		t.Errorf("%.1f%% of pixels are clipped to 0 or 255", 100*frac)
	}
}

// features returns n examples of src as float64 rows from feature(img), with their labels.
func features(t testing.TB, src Source, n int, feature func(img []uint8) []float64) ([][]float64, []int) {
	t.Helper()
	rows := make([][]float64, n)
	labels := make([]int, n)
	for i := range n {
		img, label := getImage(t, src, i)
		rows[i], labels[i] = feature(img), label
	}
	return rows, labels
}

func meanColour(img []uint8) []float64 {
	plane := len(img) / 3
	f := make([]float64, 3)
	for c := range 3 {
		for _, v := range img[c*plane : (c+1)*plane] {
			f[c] += float64(v)
		}
		f[c] /= float64(plane)
	}
	return f
}

func rawPixels(img []uint8) []float64 {
	f := make([]float64, len(img))
	for i, v := range img {
		f[i] = float64(v) / 255
	}
	return f
}

// nearestClassMeanAccuracy fits one mean per class on the train rows and scores the test rows.
func nearestClassMeanAccuracy(trainX [][]float64, trainY []int, testX [][]float64, testY []int, classes int) float64 {
	dim := len(trainX[0])
	means := make([][]float64, classes)
	counts := make([]int, classes)
	for k := range means {
		means[k] = make([]float64, dim)
	}
	for i, row := range trainX {
		counts[trainY[i]]++
		for j, v := range row {
			means[trainY[i]][j] += v
		}
	}
	for k := range means {
		for j := range means[k] {
			means[k][j] /= float64(max(counts[k], 1))
		}
	}
	correct := 0
	for i, row := range testX {
		best, bestDist := 0, math.Inf(1)
		for k := range means {
			d := 0.0
			for j, v := range row {
				d += (v - means[k][j]) * (v - means[k][j])
			}
			if d < bestDist {
				best, bestDist = k, d
			}
		}
		if best == testY[i] {
			correct++
		}
	}
	return float64(correct) / float64(len(testX))
}

// softmaxRegressionAccuracy trains a multinomial logistic regression (a linear classifier) with SGD on
// standardised features and returns its test accuracy.
func softmaxRegressionAccuracy(trainX [][]float64, trainY []int, testX [][]float64, testY []int, classes, epochs int) float64 {
	dim := len(trainX[0])
	mean, std := make([]float64, dim), make([]float64, dim)
	for _, row := range trainX {
		for j, v := range row {
			mean[j] += v
		}
	}
	for j := range mean {
		mean[j] /= float64(len(trainX))
	}
	for _, row := range trainX {
		for j, v := range row {
			std[j] += (v - mean[j]) * (v - mean[j])
		}
	}
	for j := range std {
		std[j] = math.Sqrt(std[j]/float64(len(trainX))) + 1e-6
	}
	standardise := func(row []float64) []float64 {
		out := make([]float64, dim)
		for j, v := range row {
			out[j] = (v - mean[j]) / std[j]
		}
		return out
	}
	xs := make([][]float64, len(trainX))
	for i, row := range trainX {
		xs[i] = standardise(row)
	}
	weights := make([][]float64, classes)
	for k := range weights {
		weights[k] = make([]float64, dim+1) // last entry is the bias
	}
	logits := make([]float64, classes)
	scores := func(x []float64) {
		for k, w := range weights {
			s := w[dim]
			for j, v := range x {
				s += w[j] * v
			}
			logits[k] = s
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	order := rng.Perm(len(xs))
	const weightDecay = 1e-3
	for epoch := range epochs {
		lr := 0.01 / float64(1+epoch)
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, i := range order {
			x := xs[i]
			scores(x)
			top := math.Inf(-1)
			for _, l := range logits {
				top = max(top, l)
			}
			sum := 0.0
			for k, l := range logits {
				logits[k] = math.Exp(l - top)
				sum += logits[k]
			}
			for k, w := range weights {
				g := logits[k] / sum
				if k == trainY[i] {
					g--
				}
				for j, v := range x {
					w[j] -= lr * (g*v + weightDecay*w[j])
				}
				w[dim] -= lr * g
			}
		}
	}
	correct := 0
	for i, row := range testX {
		scores(standardise(row))
		best := 0
		for k, l := range logits {
			if l > logits[best] {
				best = k
			}
		}
		if best == testY[i] {
			correct++
		}
	}
	return float64(correct) / float64(len(testX))
}

// The class must not be readable from the colour: every class draws its colours from one distribution.
func TestSyntheticIsNotSeparableByMeanColour(t *testing.T) {
	train := mustSynthetic(t, 11, 2000, SplitTrain)
	test := mustSynthetic(t, 11, 2000, SplitTest)
	trainX, trainY := features(t, train, 2000, meanColour)
	testX, testY := features(t, test, 2000, meanColour)
	acc := nearestClassMeanAccuracy(trainX, trainY, testX, testY, 10)
	t.Logf("nearest class mean on per-channel mean colour: %.1f%% test accuracy (chance 10%%)", 100*acc)
	if acc >= 0.25 {
		t.Errorf("mean colour predicts the class with %.1f%% accuracy, want < 25%%", 100*acc)
	}
}

// A linear model on raw pixels must stay far below what a small CNN reaches (well above 90%): random
// position, scale, rotation and colour polarity leave no class template to match.
func TestSyntheticIsNotLinearlySeparable(t *testing.T) {
	const n = 2000
	train := mustSynthetic(t, 12, n, SplitTrain)
	test := mustSynthetic(t, 12, n, SplitTest)
	trainX, trainY := features(t, train, n, rawPixels)
	testX, testY := features(t, test, n, rawPixels)

	ncm := nearestClassMeanAccuracy(trainX, trainY, testX, testY, 10)
	t.Logf("nearest class mean on raw pixels: %.1f%% test accuracy", 100*ncm)
	if ncm >= 0.45 {
		t.Errorf("nearest class mean on raw pixels scores %.1f%%, want < 45%%", 100*ncm)
	}
	epochs := 4
	if testing.Short() {
		epochs = 2
	}
	softmax := softmaxRegressionAccuracy(trainX, trainY, testX, testY, 10, epochs)
	t.Logf("softmax regression on raw pixels (%d epochs of SGD): %.1f%% test accuracy", epochs, 100*softmax)
	if softmax >= 0.45 {
		t.Errorf("softmax regression on raw pixels scores %.1f%%, want < 45%%", 100*softmax)
	}
}

func TestWriteGridPNG(t *testing.T) {
	s := mustSynthetic(t, 1, 500, SplitTrain)
	var buf bytes.Buffer
	if err := WriteGridPNG(&buf, s, 8, 2); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("decoding the grid: %v", err)
	}
	// 8 columns and 10 rows of 64-px cells with 2-px gutters.
	if got := img.Bounds().Size(); got.X != 8*66+2 || got.Y != 10*66+2 {
		t.Errorf("grid is %v, want 530x662", got)
	}
	// Set RESNET_SYNTHETIC_GRID=/some/dir to keep a copy for a person to look at.
	if dir := os.Getenv("RESNET_SYNTHETIC_GRID"); dir != "" {
		path := filepath.Join(dir, "synthetic_grid.png")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := WriteGridPNG(f, s, 12, 3); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
	}
}

func BenchmarkSyntheticGet(b *testing.B) {
	s := mustSynthetic(b, 1, 50000, SplitTrain)
	img := make([]uint8, 3*32*32)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.Get(i%s.Len(), img); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
}
