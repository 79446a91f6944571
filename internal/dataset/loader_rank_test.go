package dataset

import (
	"fmt"
	"strings"
	"testing"
)

// A rank's training loader holds its share of each single-process batch: the same examples, augmented
// bit for bit as the single process augments them, at positions [i*B + r*B/W, i*B + (r+1)*B/W); also when
// the rank resumes mid-epoch.
func TestRankLoaderSharesEachGlobalBatch(t *testing.T) {
	src := mustSynthetic(t, 1, 200, SplitTrain)
	opt := syntheticOptions(2)
	opt.DropLast = true
	whole := mustLoader(t, src, opt)
	const world = 4
	share := opt.BatchSize / world
	for epoch := range 2 {
		want := collectEpoch(t, whole, epoch, 0)
		for r := range world {
			ro := opt
			ro.Rank, ro.World = r, world
			l := mustLoader(t, src, ro)
			if l.BatchesPerEpoch() != whole.BatchesPerEpoch() || l.ExamplesPerEpoch() != whole.ExamplesPerEpoch()/world {
				t.Fatalf("rank %d: %d batches of %d examples in all, want %d and %d", r, l.BatchesPerEpoch(), l.ExamplesPerEpoch(),
					whole.BatchesPerEpoch(), whole.ExamplesPerEpoch()/world)
			}
			for _, start := range []int{0, 2} {
				got := collectEpoch(t, l, epoch, start)
				var slice []batchCopy
				for _, w := range want[start:] {
					img := len(w.x) / len(w.labels)
					slice = append(slice, batchCopy{w.epoch, w.index, w.x[r*share*img : (r+1)*share*img], w.labels[r*share : (r+1)*share]})
				}
				equalBatches(t, fmt.Sprintf("epoch %d rank %d from batch %d", epoch, r, start), got, slice)
			}
		}
	}
}

// Dealt evaluation batches: rank r gets the whole global batches r, r+W, ..., so the ranks together hold
// every example once, the short last batch included.
func TestRankLoaderDealsWholeBatches(t *testing.T) {
	src := indexSource{n: 70, failAt: -1}
	opt := LoaderOptions{BatchSize: 16, Norm: identityNorm, Workers: 2}
	whole := collectEpoch(t, mustLoader(t, src, opt), 0, 0) // 5 batches, the last of 6
	const world = 2
	seen := 0
	for r := range world {
		ro := opt
		ro.Rank, ro.World, ro.Deal = r, world, true
		l := mustLoader(t, src, ro)
		got := collectEpoch(t, l, 0, 0)
		if len(got) != (len(whole)-r+world-1)/world {
			t.Fatalf("rank %d: %d batches, want %d", r, len(got), (len(whole)-r+world-1)/world)
		}
		for k, b := range got {
			w := whole[k*world+r]
			equalBatches(t, fmt.Sprintf("rank %d batch %d", r, k), []batchCopy{{b.epoch, w.index, b.x, b.labels}}, []batchCopy{w})
			seen += len(b.labels)
		}
		if l.ExamplesPerEpoch() != sum(got) {
			t.Errorf("rank %d: ExamplesPerEpoch %d, delivered %d", r, l.ExamplesPerEpoch(), sum(got))
		}
	}
	if seen != src.n {
		t.Errorf("the ranks hold %d examples together, want %d", seen, src.n)
	}
}

func sum(bs []batchCopy) int {
	n := 0
	for _, b := range bs {
		n += len(b.labels)
	}
	return n
}

func TestRankLoaderRejectsBadShares(t *testing.T) {
	src := indexSource{n: 64, failAt: -1}
	for _, c := range []struct {
		opt  LoaderOptions
		want string
	}{
		{LoaderOptions{BatchSize: 16, DropLast: true, Rank: 0, World: 3}, "batch size 16 does not divide among 3 ranks"},
		{LoaderOptions{BatchSize: 16, DropLast: true, Rank: 2, World: 2}, "rank 2 is not one of the 2 ranks"},
		{LoaderOptions{BatchSize: 16, Rank: 1, World: 2}, "must drop the last incomplete batch"},
	} {
		c.opt.Norm = identityNorm
		_, err := NewLoader(src, c.opt)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want an error containing %q", c.opt, err, c.want)
		}
	}
}
