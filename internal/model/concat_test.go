package model

import (
	"errors"
	"math"
	"testing"

	"resnet/internal/backend"
)

// concatPoolTopology is a small net of branches joined by concatenation and average pools over windows,
// for the tests of those nodes: the input and a BN-ReLU feed one concatenation beside two branches, one of
// which feeds a second concatenation too (its gradient is the sum of two copies), then a 2x2/2 pool and a
// 3x3/1 pool that excludes the padding.
func concatPoolTopology(b *builder, in *act, mark func(string, int, *act)) (*act, error) {
	branch := func(name string, x *act, c int) (*act, error) {
		h, err := b.conv(name+".conv", x, c, 3, 1, 1)
		if err != nil {
			return nil, err
		}
		return b.bn(name+".bn", h, true, nil).y, nil
	}
	a, err := branch("stem", in, 4)
	if err != nil {
		return nil, err
	}
	p1, err := branch("b1", a, 3)
	if err != nil {
		return nil, err
	}
	p2, err := branch("b2", a, 5)
	if err != nil {
		return nil, err
	}
	cat1 := b.concat("cat1", in, a, p1, p2)
	p3, err := branch("b3", cat1, 2)
	if err != nil {
		return nil, err
	}
	cat2 := b.concat("cat2", p1, p3)
	h, err := b.avgPool("pool1", cat2, backend.PoolParams{Kernel: 2, Stride: 2})
	if err != nil {
		return nil, err
	}
	if h, err = b.avgPool("pool2", h, backend.PoolParams{Kernel: 3, Stride: 1, Pad: 1, ExcludePad: true}); err != nil {
		return nil, err
	}
	h = b.bn("norm", h, true, nil).y
	mark("features", 0, h)
	return h, nil
}

func init() {
	topologies["test_concat_pool"] = topology{
		validate:   func(Spec) error { return nil },
		features:   concatPoolTopology,
		classifier: "fc",
	}
}

func concatPoolSpec() Spec {
	return Spec{Name: "tiny_concat_pool", Topology: "test_concat_pool", InChannels: 3, InputSize: 8, NumClasses: 3}
}

// The concatenation and both pools have the shapes their parameters give, and cost no multiply-adds.
func TestConcatAndWindowPoolShapes(t *testing.T) {
	g, err := newGraph(concatPoolSpec())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"cat1": "15x8x8", "cat2": "5x8x8", "pool1": "5x4x4", "pool2": "5x4x4"}
	for _, a := range g.acts {
		if w, ok := want[a.name]; ok && a.shape() != w {
			t.Errorf("%s is %s, want %s", a.name, a.shape(), w)
		}
	}
	for _, nd := range g.nodes {
		switch nd.(type) {
		case *concatNode, *windowPoolNode:
			if nd.macs() != 0 {
				t.Errorf("%T: %d MACs, want 0", nd, nd.macs())
			}
		}
	}
}

// A forward pass writes each part into its channels of the concatenation, and each pool's output is the
// mean over its window: of 4 values for the 2x2/2 pool, of the positions inside the map for the 3x3/1
// pool that excludes the padding (4 at a corner, 6 on an edge, 9 inside).
func TestConcatAndWindowPoolForward(t *testing.T) {
	net := trainedNet(t, concatPoolSpec(), 2)
	dev := net.Device()
	x, _ := tinyBatch(2, 3)
	if err := net.Forward(x, 2, true); err != nil {
		t.Fatal(err)
	}
	acts := map[string]*act{}
	for _, a := range net.g.acts {
		acts[a.name] = a
	}
	get := func(a *act) []float32 {
		v := make([]float32, 2*a.c*a.h*a.w)
		if err := dev.Download(v, a.cur); err != nil {
			t.Fatal(err)
		}
		return v
	}
	cat := get(acts["cat1"])
	off := 0
	for _, name := range []string{"input", "stem.bn", "b1.bn", "b2.bn"} {
		p := acts[name]
		pv, hw := get(p), p.h*p.w
		for n := 0; n < 2; n++ {
			for i := 0; i < p.c*hw; i++ {
				if got, want := cat[(n*15+off)*hw+i], pv[n*p.c*hw+i]; got != want {
					t.Fatalf("cat1 sample %d, %s value %d: %g, want %g", n, name, i, got, want)
				}
			}
		}
		off += p.c
	}

	in, p1, p2 := get(acts["cat2"]), get(acts["pool1"]), get(acts["pool2"])
	for pl := 0; pl < 2*5; pl++ {
		for i := 0; i < 4; i++ {
			for j := 0; j < 4; j++ {
				var s float32
				for _, d := range [][2]int{{0, 0}, {0, 1}, {1, 0}, {1, 1}} {
					s += in[pl*64+(2*i+d[0])*8+2*j+d[1]]
				}
				if got := p1[pl*16+i*4+j]; math.Abs(float64(got-s/4)) > 1e-6 {
					t.Fatalf("pool1 plane %d (%d,%d): %g, want %g", pl, i, j, got, s/4)
				}
				s, cnt := 0, 0
				for y := max(i-1, 0); y <= min(i+1, 3); y++ {
					for x := max(j-1, 0); x <= min(j+1, 3); x++ {
						s += p1[pl*16+y*4+x]
						cnt++
					}
				}
				if got := p2[pl*16+i*4+j]; math.Abs(float64(got-s/float32(cnt))) > 1e-6 {
					t.Fatalf("pool2 plane %d (%d,%d): %g, want %g (mean of %d)", pl, i, j, got, s/float32(cnt), cnt)
				}
			}
		}
	}
}

// Every parameter's gradient through the concatenations (a part read by two of them and by convolutions,
// the input that needs no gradient) and both pools agrees with finite differences.
func TestConcatAndWindowPoolGradientCheck(t *testing.T) { checkGradients(t, concatPoolSpec()) }

// A window larger than the padded map is an input size the net cannot take, reported at the pool.
func TestWindowPoolTooLarge(t *testing.T) {
	s := concatPoolSpec()
	s.InputSize = 1
	_, err := newGraph(s)
	var ie *InputSizeError
	if !errors.As(err, &ie) || ie.Layer != "pool1" {
		t.Fatalf("1x1 input: got %v, want an input size error at pool1", err)
	}
}

// A second backward pass on the same batch gives the same gradients: each node writes the gradient it is
// the first to reach and adds to the others, whatever the buffers held from the step before.
func TestConcatAndWindowPoolBackwardRepeats(t *testing.T) {
	net := trainedNet(t, concatPoolSpec(), 2)
	dev := net.Device()
	x, y := tinyBatch(2, 3)
	grads := func() []float32 {
		if _, err := net.TrainStep(x, y); err != nil {
			t.Fatal(err)
		}
		v := make([]float32, net.grads.Shape.Numel())
		if err := dev.Download(v, net.grads); err != nil {
			t.Fatal(err)
		}
		return v
	}
	first, second := grads(), grads()
	for i := range first {
		if math.Float32bits(first[i]) != math.Float32bits(second[i]) {
			t.Fatalf("gradient %d: %g in the first step, %g in the second", i, first[i], second[i])
		}
	}
}
