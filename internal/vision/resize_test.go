package vision

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
)

// newImage makes a w x h image whose samples are f(x, y, c).
func newImage(w, h int, f func(x, y, c int) uint8) *Image {
	img := &Image{}
	img.Resize(w, h)
	for y := range h {
		for x := range w {
			for c := range 3 {
				img.Pix[3*(y*w+x)+c] = f(x, y, c)
			}
		}
	}
	return img
}

func randomImage(rng *rand.Rand, w, h int) *Image {
	return newImage(w, h, func(_, _, _ int) uint8 { return uint8(rng.IntN(256)) })
}

// refWeights is the resampling filter written directly from its definition, over every input sample: the
// triangle of radius max(scale, 1) centred at (i + 0.5) * scale, normalised.
func refWeights(inLen, outLen, i int) []float64 {
	scale := float64(inLen) / float64(outLen)
	fs := max(scale, 1)
	c := (float64(i) + 0.5) * scale
	w := make([]float64, inLen)
	sum := 0.0
	for j := range w {
		w[j] = max(0, 1-math.Abs(float64(j)+0.5-c)/fs)
		sum += w[j]
	}
	for j := range w {
		w[j] /= sum
	}
	return w
}

// refResize is a float64 separable reference without the intermediate 8-bit rounding.
func refResize(src *Image, w, h int) []float64 {
	tmp := make([]float64, src.H*w*3)
	for x := range w {
		wx := refWeights(src.W, w, x)
		for y := range src.H {
			for c := range 3 {
				s := 0.0
				for j, wj := range wx {
					s += wj * float64(src.Pix[3*(y*src.W+j)+c])
				}
				tmp[3*(y*w+x)+c] = s
			}
		}
	}
	out := make([]float64, h*w*3)
	for y := range h {
		wy := refWeights(src.H, h, y)
		for x := range w {
			for c := range 3 {
				s := 0.0
				for j, wj := range wy {
					s += wj * tmp[3*(j*w+x)+c]
				}
				out[3*(y*w+x)+c] = s
			}
		}
	}
	return out
}

func TestResizeIdentity(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	src := randomImage(rng, 7, 5)
	var dst Image
	ResizeBilinear(&dst, src, 7, 5)
	if !bytes.Equal(dst.Pix, src.Pix) {
		t.Error("ResizeBilinear to the same size changed pixels")
	}
	// The general path (the fast path above only copies) must be the identity too.
	var z Resizer
	z.ResizeWindow(&dst, src, Rect{0, 0, 7, 5}, 7, 5)
	if !bytes.Equal(dst.Pix, src.Pix) {
		t.Error("ResizeWindow of the whole image to its own size changed pixels")
	}
	if z.xs.taps != 1 || z.ys.taps != 1 {
		t.Errorf("identity reads %d x %d taps, want 1 x 1", z.xs.taps, z.ys.taps)
	}
}

func TestResizeConstantStaysConstant(t *testing.T) {
	src := newImage(10, 6, func(_, _, c int) uint8 { return []uint8{0, 137, 255}[c] })
	for _, size := range [][2]int{{5, 3}, {3, 2}, {1, 1}, {17, 13}, {10, 1}} {
		var dst Image
		ResizeBilinear(&dst, src, size[0], size[1])
		for i, v := range dst.Pix {
			if want := []uint8{0, 137, 255}[i%3]; v != want {
				t.Fatalf("%dx%d: sample %d = %d, want %d", size[0], size[1], i, v, want)
			}
		}
	}
}

// Worked by hand from the filter definition: a 2x downscale uses a triangle of radius 2 input samples.
// Interior output i sits at input 2i+1 and weighs samples 2i-1 .. 2i+2 by 1/8, 3/8, 3/8, 1/8; the first and
// last outputs lose one sample to the edge and renormalise to 3/7, 3/7, 1/7.
func TestResizeDownscale2xRamp(t *testing.T) {
	src := newImage(8, 2, func(x, _, c int) uint8 { return uint8(10*x + 80*c) })
	var dst Image
	ResizeBilinear(&dst, src, 4, 1)
	// Channel 0: out0 = (3*0 + 3*10 + 1*20)/7 = 7.14 -> 7, out1 = 2.5*10 = 25, out2 = 45,
	// out3 = (1*50 + 3*60 + 3*70)/7 = 62.86 -> 63. Channels 1 and 2 add 80 and 160.
	want := []uint8{7, 87, 167, 25, 105, 185, 45, 125, 205, 63, 143, 223}
	if !bytes.Equal(dst.Pix, want) {
		t.Errorf("got %v, want %v", dst.Pix, want)
	}
	// The same ramp down the other axis.
	col := newImage(1, 8, func(_, y, _ int) uint8 { return uint8(10 * y) })
	ResizeBilinear(&dst, col, 1, 4)
	if want := []uint8{7, 7, 7, 25, 25, 25, 45, 45, 45, 63, 63, 63}; !bytes.Equal(dst.Pix, want) {
		t.Errorf("vertical: got %v, want %v", dst.Pix, want)
	}
}

// Upscaling is plain bilinear with half-pixel centres: outputs at 0.25, 0.75, 1.25, 1.75 of [0, 100].
func TestResizeUpscale2x(t *testing.T) {
	src := newImage(2, 1, func(x, _, _ int) uint8 { return uint8(100 * x) })
	var dst Image
	ResizeBilinear(&dst, src, 4, 1)
	if want := []uint8{0, 0, 0, 25, 25, 25, 75, 75, 75, 100, 100, 100}; !bytes.Equal(dst.Pix, want) {
		t.Errorf("got %v, want %v", dst.Pix, want)
	}
}

func TestResizeMatchesFloatReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	src := randomImage(rng, 37, 23)
	for _, size := range [][2]int{{16, 11}, {50, 40}, {37, 9}, {5, 23}, {100, 7}, {1, 1}} {
		var dst Image
		ResizeBilinear(&dst, src, size[0], size[1])
		ref := refResize(src, size[0], size[1])
		for i, v := range dst.Pix {
			// The horizontal pass rounds to 8 bits, so allow one level.
			if d := math.Abs(float64(v) - ref[i]); d > 1 {
				t.Fatalf("%dx%d: sample %d = %d, float reference %.3f", size[0], size[1], i, v, ref[i])
			}
		}
	}
}

func TestResizeWindowEqualsCropThenResize(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	src := randomImage(rng, 40, 30)
	var z Resizer
	for _, tc := range []struct {
		win  Rect
		w, h int
	}{
		{Rect{3, 4, 20, 17}, 11, 7},
		{Rect{0, 0, 40, 30}, 13, 29},
		{Rect{39, 29, 1, 1}, 3, 2},
		{Rect{10, 2, 9, 25}, 24, 24},
	} {
		var crop, want, got Image
		Crop(&crop, src, tc.win)
		ResizeBilinear(&want, &crop, tc.w, tc.h)
		z.ResizeWindow(&got, src, tc.win, tc.w, tc.h)
		if got.W != tc.w || got.H != tc.h || !bytes.Equal(got.Pix, want.Pix) {
			t.Errorf("window %+v to %dx%d differs from crop then resize", tc.win, tc.w, tc.h)
		}
	}
}

func TestResizeCropEqualsResizeThenCrop(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	src := randomImage(rng, 50, 37)
	var z Resizer
	for _, tc := range []struct {
		w, h int
		crop Rect
	}{
		{30, 22, Rect{5, 3, 16, 16}},
		{80, 59, Rect{0, 0, 80, 59}},
		{80, 59, Rect{79, 58, 1, 1}},
		{25, 18, Rect{2, 0, 20, 18}},
	} {
		var full, want, got Image
		ResizeBilinear(&full, src, tc.w, tc.h)
		Crop(&want, &full, tc.crop)
		z.ResizeCrop(&got, src, tc.w, tc.h, tc.crop)
		if !bytes.Equal(got.Pix, want.Pix) {
			t.Errorf("resize to %dx%d, crop %+v differs from resize then crop", tc.w, tc.h, tc.crop)
		}
	}
}

func TestShorterSideSize(t *testing.T) {
	for _, tc := range []struct{ w, h, side, rw, rh int }{
		{500, 375, 256, 341, 256}, // 256 * 500 / 375 = 341.33
		{375, 500, 256, 256, 341},
		{500, 333, 224, 336, 224}, // 336.34
		{300, 300, 256, 256, 256},
		{640, 480, 480, 640, 480},
	} {
		if rw, rh := ShorterSideSize(tc.w, tc.h, tc.side); rw != tc.rw || rh != tc.rh {
			t.Errorf("%dx%d to %d: got %dx%d, want %dx%d", tc.w, tc.h, tc.side, rw, rh, tc.rw, tc.rh)
		}
	}
	var dst Image
	ResizeShorter(&dst, randomImage(rand.New(rand.NewPCG(1, 1)), 50, 30), 20)
	if dst.W != 33 || dst.H != 20 {
		t.Errorf("ResizeShorter 50x30 to 20: got %dx%d, want 33x20", dst.W, dst.H)
	}
}

func TestResizerDoesNotAllocate(t *testing.T) {
	src := randomImage(rand.New(rand.NewPCG(9, 9)), 120, 90)
	var z Resizer
	var dst Image
	z.ResizeWindow(&dst, src, Rect{10, 10, 100, 70}, 64, 64)
	if n := testing.AllocsPerRun(20, func() { z.ResizeWindow(&dst, src, Rect{5, 7, 90, 80}, 64, 64) }); n != 0 {
		t.Errorf("%v allocations per resize after warm-up, want 0", n)
	}
}
