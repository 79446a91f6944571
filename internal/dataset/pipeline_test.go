package dataset

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// flakyPipeline writes its index into every value and reports the listed indices as bad.
type flakyPipeline struct {
	n   int
	bad map[int]bool
}

func (p *flakyPipeline) Len() int                   { return p.n }
func (p *flakyPipeline) NumClasses() int            { return p.n }
func (p *flakyPipeline) OutputShape() (c, h, w int) { return 1, 1, 2 }
func (p *flakyPipeline) NewWorker() PipelineWorker  { return p }
func (p *flakyPipeline) Load(i int, _ *rand.Rand, dst []float32) (int, error) {
	if p.bad[i] {
		return 0, &BadExampleError{Path: "img" + string(rune('a'+i)) + ".JPEG", Err: errors.New("truncated")}
	}
	dst[0], dst[1] = float32(i), float32(-i)
	return i, nil
}

func TestLoaderSkipsBadExamplesAndReportsThem(t *testing.T) {
	p := &flakyPipeline{n: 10, bad: map[int]bool{2: true, 3: true, 7: true}}
	l, err := NewPipelineLoader(p, LoaderOptions{BatchSize: 4, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Start(0, 0); err != nil {
		t.Fatal(err)
	}
	var labels []int32
	var skipped []string
	for {
		b, err := l.Next()
		if err != nil {
			t.Fatal(err)
		}
		if b == nil {
			break
		}
		for k := 0; k < b.N; k++ {
			if b.X[2*k] != float32(b.Labels[k]) || b.X[2*k+1] != -float32(b.Labels[k]) {
				t.Errorf("batch %d example %d: pixels %v do not belong to label %d", b.Index, k, b.X[2*k:2*k+2], b.Labels[k])
			}
		}
		labels = append(labels, b.Labels...)
		for _, s := range b.Skipped {
			skipped = append(skipped, s.Error())
		}
		l.Release(b)
	}
	if got := labels; len(got) != 7 || got[0] != 0 || got[1] != 1 || got[2] != 4 || got[4] != 6 || got[5] != 8 {
		t.Errorf("labels %v, want 0 1 4 5 6 8 9", got)
	}
	want := "bad image imgc.JPEG: truncated|bad image imgd.JPEG: truncated|bad image imgh.JPEG: truncated"
	if strings.Join(skipped, "|") != want {
		t.Errorf("skipped %q, want %q", strings.Join(skipped, "|"), want)
	}

	strict, err := NewPipelineLoader(p, LoaderOptions{BatchSize: 4, Workers: 2, Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	defer strict.Close()
	strict.Start(0, 0)
	_, err = strict.Next()
	if err == nil || err.Error() != "dataset: loading example 2 (epoch 0, batch 0): bad image imgc.JPEG: truncated" {
		t.Errorf("strict loader: %v", err)
	}
}

// A backend's staging allocator provides the batch buffers.
func TestLoaderUsesStagingBuffers(t *testing.T) {
	p := &flakyPipeline{n: 8}
	var given [][]float32
	l, err := NewPipelineLoader(p, LoaderOptions{BatchSize: 4, Workers: 1, Prefetch: 1, Staging: func(n int) []float32 {
		b := make([]float32, n)
		given = append(given, b)
		return b
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Start(0, 0)
	b, err := l.Next()
	if err != nil || b == nil {
		t.Fatal(err)
	}
	if len(given) == 0 || &given[0][0] != &b.X[0] || len(given[0]) != 8 {
		t.Errorf("batch buffer is not the staging buffer (%d allocated)", len(given))
	}
}
