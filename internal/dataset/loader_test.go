package dataset

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// indexSource is a 1x2x2 test source whose example i spells i in its first three pixels, so a batch
// normalised with mean 0 and std 1 tells which examples it holds.
type indexSource struct {
	n      int
	failAt int // Get fails for this index; -1 never
}

func (s indexSource) Len() int                  { return s.n }
func (s indexSource) NumClasses() int           { return 10 }
func (s indexSource) ImageShape() (c, h, w int) { return 1, 2, 2 }
func (s indexSource) Get(i int, dst []uint8) (int, error) {
	if i == s.failAt {
		return 0, errTestGet
	}
	dst[0], dst[1], dst[2], dst[3] = uint8(i), uint8(i>>8), uint8(i>>16), 7
	return i % 10, nil
}

var identityNorm = Normalization{Std: [3]float32{1, 1, 1}}

// exampleIndices decodes the indexSource examples of b.
func exampleIndices(t *testing.T, b *Batch) []int {
	t.Helper()
	out := make([]int, b.N)
	for k := range b.N {
		x := b.X[4*k : 4*k+4]
		i := int(x[0]) | int(x[1])<<8 | int(x[2])<<16
		if x[3] != 7 || int(b.Labels[k]) != i%10 {
			t.Fatalf("batch %d slot %d does not hold an intact example: %v label %d", b.Index, k, x, b.Labels[k])
		}
		out[k] = i
	}
	return out
}

func mustLoader(t testing.TB, src Source, opt LoaderOptions) *Loader {
	t.Helper()
	l, err := NewLoader(src, opt)
	if err != nil {
		t.Fatalf("NewLoader: %v", err)
	}
	t.Cleanup(l.Close)
	return l
}

// batchCopy is a batch's content, kept after the batch is released.
type batchCopy struct {
	epoch, index int
	x            []float32
	labels       []int32
}

// collectEpoch runs one epoch from startBatch and returns copies of its batches.
func collectEpoch(t *testing.T, l *Loader, epoch, startBatch int) []batchCopy {
	t.Helper()
	if err := l.Start(epoch, startBatch); err != nil {
		t.Fatalf("Start(%d, %d): %v", epoch, startBatch, err)
	}
	var out []batchCopy
	for {
		b, err := l.Next()
		if err != nil {
			t.Fatalf("Next in epoch %d: %v", epoch, err)
		}
		if b == nil {
			return out
		}
		if b.Epoch != epoch || b.Index != startBatch+len(out) {
			t.Fatalf("got batch (%d, %d), want (%d, %d)", b.Epoch, b.Index, epoch, startBatch+len(out))
		}
		out = append(out, batchCopy{b.Epoch, b.Index, slices.Clone(b.X), slices.Clone(b.Labels)})
		l.Release(b)
	}
}

func equalBatches(t *testing.T, what string, got, want []batchCopy) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d batches, want %d", what, len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.epoch != w.epoch || g.index != w.index || !slices.Equal(g.labels, w.labels) || !bitEqual(g.x, w.x) {
			t.Fatalf("%s: batch %d (epoch %d, index %d) differs", what, i, g.epoch, g.index)
		}
	}
}

func bitEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func syntheticOptions(workers int) LoaderOptions {
	return LoaderOptions{
		BatchSize: 32, Shuffle: true, Augment: true, Seed: 42, Workers: workers,
		Norm: Normalization{Mean: [3]float32{128, 128, 128}, Std: [3]float32{64, 64, 64}},
	}
}

func TestLoaderIsIndependentOfWorkerCount(t *testing.T) {
	src := mustSynthetic(t, 1, 300, SplitTrain)
	one := mustLoader(t, src, syntheticOptions(1))
	optFour := syntheticOptions(4)
	optFour.Prefetch = 5
	four := mustLoader(t, src, optFour)
	if one.BatchesPerEpoch() != 10 {
		t.Fatalf("BatchesPerEpoch = %d, want 10 (300 examples in batches of 32, last kept)", one.BatchesPerEpoch())
	}
	for epoch := range 2 {
		a := collectEpoch(t, one, epoch, 0)
		b := collectEpoch(t, four, epoch, 0)
		equalBatches(t, fmt.Sprintf("epoch %d, 1 vs 4 workers", epoch), b, a)
		if last := a[len(a)-1]; len(last.labels) != 300-9*32 {
			t.Errorf("last batch holds %d examples, want %d", len(last.labels), 300-9*32)
		}
	}
}

func TestLoaderShufflesEachEpochDifferently(t *testing.T) {
	src := indexSource{n: 100, failAt: -1}
	l := mustLoader(t, src, LoaderOptions{BatchSize: 100, Shuffle: true, Seed: 3, Norm: identityNorm, Workers: 2})
	var orders [][]int
	for epoch := range 3 {
		if err := l.Start(epoch, 0); err != nil {
			t.Fatal(err)
		}
		b, err := l.Next()
		if err != nil || b == nil {
			t.Fatalf("Next: %v, %v", b, err)
		}
		orders = append(orders, exampleIndices(t, b))
		l.Release(b)
	}
	if slices.Equal(orders[0], orders[1]) || slices.Equal(orders[1], orders[2]) {
		t.Error("two epochs have the same order")
	}
	if slices.IsSorted(orders[0]) {
		t.Error("epoch 0 is not shuffled")
	}
	// Without Shuffle the order is the source's.
	plain := mustLoader(t, src, LoaderOptions{BatchSize: 100, Norm: identityNorm, Workers: 2})
	if err := plain.Start(5, 0); err != nil {
		t.Fatal(err)
	}
	b, err := plain.Next()
	if err != nil {
		t.Fatal(err)
	}
	if got := exampleIndices(t, b); !slices.IsSorted(got) || got[0] != 0 {
		t.Errorf("unshuffled order starts %v", got[:5])
	}
}

func TestLoaderAugmentationChangesWithEpoch(t *testing.T) {
	src := mustSynthetic(t, 1, 64, SplitTrain)
	opt := syntheticOptions(2)
	opt.Shuffle = false
	l := mustLoader(t, src, opt)
	a := collectEpoch(t, l, 0, 0)
	b := collectEpoch(t, l, 1, 0)
	if !slices.Equal(a[0].labels, b[0].labels) {
		t.Fatal("unshuffled epochs hold different examples")
	}
	if bitEqual(a[0].x, b[0].x) {
		t.Error("the augmentation of batch 0 is the same in epochs 0 and 1")
	}
	// Without augmentation a batch is exactly the normalised source images.
	opt.Augment = false
	plain := mustLoader(t, src, opt)
	got := collectEpoch(t, plain, 0, 0)
	img := make([]uint8, 3*32*32)
	want := make([]float32, len(img))
	for k := range 32 {
		label, _ := src.Get(k, img)
		if err := Normalize(want, img, 3, 32, 32, opt.Norm); err != nil {
			t.Fatal(err)
		}
		if !bitEqual(got[0].x[k*len(img):(k+1)*len(img)], want) || int(got[0].labels[k]) != label {
			t.Fatalf("example %d of batch 0 is not the normalised source image", k)
		}
	}
}

func TestLoaderDeliversEveryExampleOnce(t *testing.T) {
	src := indexSource{n: 1003, failAt: -1}
	for _, workers := range []int{1, 3} {
		l := mustLoader(t, src, LoaderOptions{BatchSize: 64, Shuffle: true, Seed: 9, Norm: identityNorm, Workers: workers})
		for epoch := range 2 {
			if err := l.Start(epoch, 0); err != nil {
				t.Fatal(err)
			}
			seen := make([]int, src.n)
			batches := 0
			for {
				b, err := l.Next()
				if err != nil {
					t.Fatal(err)
				}
				if b == nil {
					break
				}
				batches++
				for _, i := range exampleIndices(t, b) {
					seen[i]++
				}
				l.Release(b)
			}
			if batches != l.BatchesPerEpoch() || batches != 16 {
				t.Errorf("%d workers, epoch %d: %d batches, BatchesPerEpoch %d, want 16", workers, epoch, batches, l.BatchesPerEpoch())
			}
			for i, c := range seen {
				if c != 1 {
					t.Fatalf("%d workers, epoch %d: example %d delivered %d times", workers, epoch, i, c)
				}
			}
			// The end of the epoch is sticky.
			if b, err := l.Next(); b != nil || err != nil {
				t.Errorf("Next after the end = %v, %v; want nil, nil", b, err)
			}
		}
	}
}

func TestLoaderDropLast(t *testing.T) {
	l := mustLoader(t, indexSource{n: 100, failAt: -1}, LoaderOptions{BatchSize: 30, DropLast: true, Norm: identityNorm, Workers: 2})
	got := collectEpoch(t, l, 0, 0)
	if len(got) != 3 || l.BatchesPerEpoch() != 3 || l.ExamplesPerEpoch() != 90 {
		t.Errorf("%d batches, BatchesPerEpoch %d, ExamplesPerEpoch %d; want 3, 3, 90", len(got), l.BatchesPerEpoch(), l.ExamplesPerEpoch())
	}
	for _, b := range got {
		if len(b.labels) != 30 {
			t.Errorf("batch %d holds %d examples, want 30", b.index, len(b.labels))
		}
	}
}

func TestLoaderResumesMidEpoch(t *testing.T) {
	src := mustSynthetic(t, 2, 320, SplitTrain)
	full := mustLoader(t, src, syntheticOptions(3))
	collectEpoch(t, full, 0, 0)
	want := collectEpoch(t, full, 1, 0)

	resumed := mustLoader(t, src, syntheticOptions(2))
	got := collectEpoch(t, resumed, 1, 3)
	equalBatches(t, "resumed at (1, 3)", got, want[3:])

	// Abandoning an epoch halfway and starting another works too.
	if err := resumed.Start(0, 0); err != nil {
		t.Fatal(err)
	}
	b, err := resumed.Next()
	if err != nil || b == nil {
		t.Fatalf("Next: %v, %v", b, err)
	}
	resumed.Release(b)
	equalBatches(t, "epoch 1 after abandoning epoch 0", collectEpoch(t, resumed, 1, 0), want)
	// Starting at the end delivers nothing.
	if got := collectEpoch(t, resumed, 1, resumed.BatchesPerEpoch()); len(got) != 0 {
		t.Errorf("Start at the last batch delivered %d batches", len(got))
	}
}

func TestLoaderReportsSourceErrors(t *testing.T) {
	l := mustLoader(t, indexSource{n: 50, failAt: 23}, LoaderOptions{BatchSize: 10, Norm: identityNorm, Workers: 3})
	if err := l.Start(0, 0); err != nil {
		t.Fatal(err)
	}
	var err error
	delivered := 0
	for {
		var b *Batch
		b, err = l.Next()
		if err != nil || b == nil {
			break
		}
		delivered++
		l.Release(b)
	}
	want := "dataset: loading example 23 (epoch 0, batch 2): test source: broken example"
	if err == nil || err.Error() != want || !errors.Is(err, errTestGet) {
		t.Fatalf("error = %v, want %q", err, want)
	}
	if delivered != 2 {
		t.Errorf("%d batches delivered before the error, want 2", delivered)
	}
	if _, again := l.Next(); again == nil || again.Error() != want {
		t.Errorf("Next after the error = %v, want the same error", again)
	}
	// A fresh Start that skips the bad batch recovers.
	if got := collectEpoch(t, l, 0, 3); len(got) != 2 {
		t.Errorf("after resuming past the bad batch: %d batches, want 2", len(got))
	}
}

func TestLoaderRejectsBadUse(t *testing.T) {
	src := indexSource{n: 10, failAt: -1}
	for _, tc := range []struct {
		opt  LoaderOptions
		want string
	}{
		{LoaderOptions{BatchSize: 0, Norm: identityNorm}, "dataset: loader batch size must be > 0 (got 0)"},
		{LoaderOptions{BatchSize: 4, Workers: -1, Norm: identityNorm}, "dataset: loader workers must be >= 0 (got -1; 0 means one per CPU)"},
		{LoaderOptions{BatchSize: 4}, "dataset: loader: dataset: normalisation std of channel 0 is 0; it must be > 0 and finite (unset? compute it with ComputeNormalization)"},
		{LoaderOptions{BatchSize: 11, DropLast: true, Norm: identityNorm}, "dataset: loader batch size 11 exceeds the 10 examples; with drop_last no batch is left"},
	} {
		_, err := NewLoader(src, tc.opt)
		if err == nil || err.Error() != tc.want {
			t.Errorf("NewLoader(%+v) error = %v, want %q", tc.opt, err, tc.want)
		}
	}
	l := mustLoader(t, src, LoaderOptions{BatchSize: 4, Norm: identityNorm, Workers: 1})
	if _, err := l.Next(); err == nil || err.Error() != "dataset: loader Next before Start" {
		t.Errorf("Next before Start: %v", err)
	}
	if err := l.Start(0, 4); err == nil || err.Error() != "dataset: loader start batch 4 outside [0, 3] for epoch 0" {
		t.Errorf("Start past the end: %v", err)
	}
	l.Close()
	l.Close()
	if err := l.Start(0, 0); err == nil || !strings.Contains(err.Error(), "after Close") {
		t.Errorf("Start after Close: %v", err)
	}
}

func TestLoaderReleaseIgnoresMisuse(t *testing.T) {
	l := mustLoader(t, indexSource{n: 40, failAt: -1}, LoaderOptions{BatchSize: 10, Norm: identityNorm, Workers: 2, Prefetch: 1})
	other := mustLoader(t, indexSource{n: 40, failAt: -1}, LoaderOptions{BatchSize: 10, Norm: identityNorm, Workers: 1})
	if err := l.Start(0, 0); err != nil {
		t.Fatal(err)
	}
	b, err := l.Next()
	if err != nil {
		t.Fatal(err)
	}
	l.Release(b)
	l.Release(b)     // twice
	other.Release(b) // not its batch
	l.Release(nil)
	// If the double release had put b in the pool twice, two batches would share one buffer.
	held := map[*Batch]bool{}
	for {
		b, err := l.Next()
		if err != nil {
			t.Fatal(err)
		}
		if b == nil {
			break
		}
		if held[b] {
			t.Fatal("one buffer delivered twice while still held")
		}
		held[b] = true
		exampleIndices(t, b)
	}
}

func TestLoaderCloseStopsWorkers(t *testing.T) {
	before := runtime.NumGoroutine()
	src := mustSynthetic(t, 1, 1000, SplitTrain)
	for range 3 {
		l, err := NewLoader(src, syntheticOptions(4))
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Start(0, 0); err != nil {
			t.Fatal(err)
		}
		b, err := l.Next()
		if err != nil {
			t.Fatal(err)
		}
		_ = b // Close with a batch held and others in flight.
		l.Close()
	}
	// Exited goroutines can take a moment to be reaped.
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Errorf("%d goroutines before the loaders, %d after Close", before, after)
	}
}

func TestLoaderSteadyStateDoesNotAllocate(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage counters distort allocation counts")
	}
	src := mustSynthetic(t, 1, 2000, SplitTrain)
	l := mustLoader(t, src, syntheticOptions(2))
	epoch := 0
	step := func() {
		b, err := l.Next()
		if err != nil {
			t.Fatal(err)
		}
		if b == nil {
			epoch++
			if err := l.Start(epoch, 0); err != nil {
				t.Fatal(err)
			}
			return
		}
		l.Release(b)
	}
	if err := l.Start(0, 0); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		step() // warm the pool
	}
	// 150 steps cross two epoch boundaries (63 batches per epoch).
	allocs := testing.AllocsPerRun(150, step)
	t.Logf("%.2f allocations per Next/Release", allocs)
	if allocs > 0.1 {
		t.Errorf("%.2f allocations per Next/Release in steady state, want none", allocs)
	}
}

func BenchmarkLoader(b *testing.B) {
	src := mustSynthetic(b, 1, 50000, SplitTrain)
	opt := syntheticOptions(0)
	opt.BatchSize = 128
	benchLoader(b, mustLoader(b, src, opt))
}

// benchLoader runs l for b's iterations, one batch each, across epochs, and reports images/s (bad
// examples included: the loader did their work too).
func benchLoader(b *testing.B, l *Loader) {
	epoch := 0
	if err := l.Start(epoch, 0); err != nil {
		b.Fatal(err)
	}
	images := 0
	b.ReportAllocs()
	for b.Loop() {
		batch, err := l.Next()
		if err != nil {
			b.Fatal(err)
		}
		if batch == nil {
			epoch++
			if err := l.Start(epoch, 0); err != nil {
				b.Fatal(err)
			}
			continue
		}
		images += batch.N + len(batch.Skipped)
		l.Release(batch)
	}
	b.ReportMetric(float64(images)/b.Elapsed().Seconds(), "images/s")
}
