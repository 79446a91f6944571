package vision

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// chwOf is the unfused path: the plain transforms one after another.
func chwOf(img *Image, flip bool, mean, std [3]float32) []float32 {
	out := make([]float32, 3*img.W*img.H)
	if flip {
		ToCHWFlip(out, img, mean, std)
	} else {
		ToCHW(out, img, mean, std)
	}
	return out
}

func TestTrainRRCEqualsUnfusedPath(t *testing.T) {
	src := randomImage(rand.New(rand.NewPCG(1, 1)), 61, 47)
	var s Scratch
	const size = 24
	dst := make([]float32, 3*size*size)
	for seed := range uint64(20) {
		flip := seed%2 == 1
		if err := TrainRRC(dst, src, rand.New(rand.NewPCG(seed, 0)), size, flip, ImageNetMean, ImageNetStd, &s); err != nil {
			t.Fatal(err)
		}
		r := RandomResizedCropRect(src.W, src.H, rand.New(rand.NewPCG(seed, 0)), 0.08, 1, 3.0/4, 4.0/3)
		var crop, resized Image
		Crop(&crop, src, r)
		ResizeBilinear(&resized, &crop, size, size)
		if want := chwOf(&resized, flip, ImageNetMean, ImageNetStd); !slices.Equal(dst, want) {
			t.Fatalf("seed %d (window %+v, flip %v): fused result differs from crop, resize, ToCHW", seed, r, flip)
		}
	}
}

func TestTrainScaleAugmentEqualsUnfusedPath(t *testing.T) {
	src := randomImage(rand.New(rand.NewPCG(2, 2)), 80, 60)
	var s Scratch
	const size = 20
	dst := make([]float32, 3*size*size)
	for seed := range uint64(10) {
		if err := TrainScaleAugment(dst, src, rand.New(rand.NewPCG(seed, 1)), 24, 45, size, true, ImageNetMean, ImageNetStd, &s); err != nil {
			t.Fatal(err)
		}
		rw, rh, crop := ScaleAugmentRect(src.W, src.H, rand.New(rand.NewPCG(seed, 1)), 24, 45, size)
		var resized, cropped Image
		ResizeBilinear(&resized, src, rw, rh)
		Crop(&cropped, &resized, crop)
		if want := chwOf(&cropped, true, ImageNetMean, ImageNetStd); !slices.Equal(dst, want) {
			t.Fatalf("seed %d: fused result differs from resize, crop, flip, ToCHW", seed)
		}
	}
}

func TestEvalCenterEqualsUnfusedPath(t *testing.T) {
	var s Scratch
	for _, size := range [][2]int{{70, 52}, {52, 70}, {40, 40}} {
		src := randomImage(rand.New(rand.NewPCG(3, 3)), size[0], size[1])
		dst := make([]float32, 3*28*28)
		if err := EvalCenter(dst, src, 32, 28, ImageNetMean, ImageNetStd, &s); err != nil {
			t.Fatal(err)
		}
		var resized, cropped Image
		ResizeShorter(&resized, src, 32)
		Crop(&cropped, &resized, CenterCropRect(resized.W, resized.H, 28))
		if want := chwOf(&cropped, false, ImageNetMean, ImageNetStd); !slices.Equal(dst, want) {
			t.Errorf("%dx%d: fused result differs from resize, centre crop, ToCHW", size[0], size[1])
		}
	}
}

func TestEvalTenCrop(t *testing.T) {
	src := randomImage(rand.New(rand.NewPCG(4, 4)), 50, 40)
	var s Scratch
	const crop = 24
	n := 3 * crop * crop
	dst := make([]float32, 10*n)
	if err := EvalTenCrop(dst, src, 30, crop, ImageNetMean, ImageNetStd, &s); err != nil {
		t.Fatal(err)
	}
	var resized Image
	ResizeShorter(&resized, src, 30)
	for i, r := range TenCropRects(resized.W, resized.H, crop) {
		var c Image
		Crop(&c, &resized, r)
		if !slices.Equal(dst[i*n:(i+1)*n], chwOf(&c, false, ImageNetMean, ImageNetStd)) {
			t.Errorf("crop %d (%+v) differs", i, r)
		}
		if !slices.Equal(dst[(5+i)*n:(6+i)*n], chwOf(&c, true, ImageNetMean, ImageNetStd)) {
			t.Errorf("crop %d is not the mirror of crop %d", 5+i, i)
		}
	}
}

func TestComposedTransformErrors(t *testing.T) {
	src := randomImage(rand.New(rand.NewPCG(5, 5)), 10, 10)
	rng := rand.New(rand.NewPCG(5, 5))
	var s Scratch
	dst := make([]float32, 3*8*8)
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"size 0", TrainRRC(dst, src, rng, 0, false, ImageNetMean, ImageNetStd, &s), "vision: crop size must be > 0 (got 0)"},
		{"short dst", TrainRRC(dst[:10], src, rng, 8, false, ImageNetMean, ImageNetStd, &s), "vision: output holds 10 values, 192 needed for 1 x 3x8x8"},
		{"zero std", TrainRRC(dst, src, rng, 8, false, ImageNetMean, [3]float32{1, 0, 1}, &s), "vision: std[1] must be positive and finite (got 0); std is on the 0..255 scale"},
		{"empty source", EvalCenter(dst, &Image{}, 10, 8, ImageNetMean, ImageNetStd, &s), "vision: source image is empty or inconsistent (0x0, 0 bytes)"},
		{"resize < crop", EvalCenter(dst, src, 6, 8, ImageNetMean, ImageNetStd, &s), "vision: evaluation resize (6) must be >= crop size (8)"},
		{"ten-crop dst", EvalTenCrop(dst, src, 8, 8, ImageNetMean, ImageNetStd, &s), "vision: output holds 192 values, 1920 needed for 10 x 3x8x8"},
		{"scale range", TrainScaleAugment(dst, src, rng, 6, 10, 8, false, ImageNetMean, ImageNetStd, &s), "vision: scale augmentation needs crop <= min side <= max side (got 8, 6, 10)"},
	} {
		if tc.err == nil || tc.err.Error() != tc.want {
			t.Errorf("%s: got %v, want %q", tc.name, tc.err, tc.want)
		}
	}
}

func TestTrainRRCDoesNotAllocate(t *testing.T) {
	src := randomImage(rand.New(rand.NewPCG(6, 6)), 100, 75)
	rng := rand.New(rand.NewPCG(6, 6))
	var s Scratch
	dst := make([]float32, 3*32*32)
	// Grow the buffers with the largest possible window first.
	if err := EvalCenter(dst, src, 75, 32, ImageNetMean, ImageNetStd, &s); err != nil {
		t.Fatal(err)
	}
	s.rs.ResizeWindow(&Image{}, src, Rect{0, 0, 100, 75}, 32, 32)
	n := testing.AllocsPerRun(50, func() {
		if err := TrainRRC(dst, src, rng, 32, true, ImageNetMean, ImageNetStd, &s); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("%v allocations per TrainRRC, want 0", n)
	}
}
