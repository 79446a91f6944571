package vision

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
)

// grid4x3 is a 4x3 image whose sample (x, y, c) is 100c + 10y + x, so every value names its position.
func grid4x3() *Image {
	return newImage(4, 3, func(x, y, c int) uint8 { return uint8(100*c + 10*y + x) })
}

func TestCrop(t *testing.T) {
	var dst Image
	Crop(&dst, grid4x3(), Rect{1, 1, 2, 2})
	want := []uint8{
		11, 111, 211, 12, 112, 212,
		21, 121, 221, 22, 122, 222,
	}
	if dst.W != 2 || dst.H != 2 || !bytes.Equal(dst.Pix, want) {
		t.Errorf("got %dx%d %v, want 2x2 %v", dst.W, dst.H, dst.Pix, want)
	}
}

func TestCropOutsidePanics(t *testing.T) {
	defer func() {
		if r := recover(); r != "vision: crop {X:3 Y:0 W:2 H:1} outside the 4x3 image" {
			t.Errorf("got panic %v", r)
		}
	}()
	var dst Image
	Crop(&dst, grid4x3(), Rect{3, 0, 2, 1})
}

func TestHFlip(t *testing.T) {
	img := grid4x3()
	HFlip(img)
	want := newImage(4, 3, func(x, y, c int) uint8 { return uint8(100*c + 10*y + 3 - x) })
	if !bytes.Equal(img.Pix, want.Pix) {
		t.Errorf("even width: got %v, want %v", img.Pix, want.Pix)
	}
	odd := newImage(3, 1, func(x, _, c int) uint8 { return uint8(100*c + x) })
	HFlip(odd)
	if want := []uint8{2, 102, 202, 1, 101, 201, 0, 100, 200}; !bytes.Equal(odd.Pix, want) {
		t.Errorf("odd width: got %v, want %v", odd.Pix, want)
	}
}

func TestCenterCropRect(t *testing.T) {
	for _, tc := range []struct {
		w, h, size int
		want       Rect
	}{
		{4, 3, 2, Rect{1, 0, 2, 2}},             // left (4-2)/2 = 1, top round(0.5) = 0 (half to even)
		{5, 5, 2, Rect{2, 2, 2, 2}},             // round(1.5) = 2
		{7, 8, 2, Rect{2, 3, 2, 2}},             // round(2.5) = 2, round(3) = 3
		{341, 256, 224, Rect{58, 16, 224, 224}}, // round(58.5) = 58
		{256, 343, 224, Rect{16, 60, 224, 224}}, // round(59.5) = 60
		{3, 10, 5, Rect{0, 2, 3, 5}},            // narrower than the crop: full width
	} {
		if got := CenterCropRect(tc.w, tc.h, tc.size); got != tc.want {
			t.Errorf("%dx%d, %d: got %+v, want %+v", tc.w, tc.h, tc.size, got, tc.want)
		}
	}
}

func TestTenCropRects(t *testing.T) {
	got := TenCropRects(4, 3, 2)
	want := [5]Rect{{0, 0, 2, 2}, {2, 0, 2, 2}, {0, 1, 2, 2}, {2, 1, 2, 2}, {1, 0, 2, 2}}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	// Contents: channel 0 of each crop, row by row.
	wantR := [5][]uint8{{0, 1, 10, 11}, {2, 3, 12, 13}, {10, 11, 20, 21}, {12, 13, 22, 23}, {1, 2, 11, 12}}
	src := grid4x3()
	for i, r := range got {
		var c Image
		Crop(&c, src, r)
		for j := range 4 {
			if c.Pix[3*j] != wantR[i][j] {
				t.Errorf("crop %d: red %v, want %v", i, c.Pix, wantR[i])
				break
			}
		}
	}
}

func TestToCHW(t *testing.T) {
	img := grid4x3()
	mean := [3]float32{1, 100, 150}
	std := [3]float32{2, 0.5, 4}
	dst := make([]float32, 36)
	ToCHW(dst, img, mean, std)
	flipped := make([]float32, 36)
	ToCHWFlip(flipped, img, mean, std)
	for c := range 3 {
		for y := range 3 {
			for x := range 4 {
				v := float32(100*c + 10*y + x)
				want := (v - mean[c]) / std[c]
				if got := dst[c*12+y*4+x]; got != want {
					t.Errorf("(%d,%d,%d): got %v, want %v", c, y, x, got, want)
				}
				if got := flipped[c*12+y*4+3-x]; got != want {
					t.Errorf("flipped (%d,%d,%d): got %v, want %v", c, y, 3-x, got, want)
				}
			}
		}
	}
	// Spot values: sample (x=3, y=2, c=1) is 123 -> (123 - 100) / 0.5 = 46.
	if dst[12+2*4+3] != 46 {
		t.Errorf("G(3,2) = %v, want 46", dst[12+2*4+3])
	}
}

func TestRandomResizedCropRect(t *testing.T) {
	const w, h = 500, 375
	rng := rand.New(rand.NewPCG(42, 0))
	var minArea, maxArea, minRatio, maxRatio = 2.0, 0.0, 10.0, 0.0
	for range 20000 {
		r := RandomResizedCropRect(w, h, rng, 0.08, 1, 3.0/4, 4.0/3)
		if !r.In(w, h) {
			t.Fatalf("window %+v outside %dx%d", r, w, h)
		}
		area := float64(r.W*r.H) / (w * h)
		ratio := float64(r.W) / float64(r.H)
		minArea, maxArea = min(minArea, area), max(maxArea, area)
		minRatio, maxRatio = min(minRatio, ratio), max(maxRatio, ratio)
	}
	// Rounding each side to an integer moves the area and ratio slightly past the drawn values.
	if minArea < 0.079 || maxArea > 1 || minArea > 0.085 || maxArea < 0.95 {
		t.Errorf("area fractions span [%.4f, %.4f], want about [0.08, 1]", minArea, maxArea)
	}
	if minRatio < 0.74 || maxRatio > 1.35 || minRatio > 0.76 || maxRatio < 1.32 {
		t.Errorf("aspect ratios span [%.4f, %.4f], want about [3/4, 4/3]", minRatio, maxRatio)
	}
	// Deterministic for a seed.
	a, b := rand.New(rand.NewPCG(7, 7)), rand.New(rand.NewPCG(7, 7))
	for range 100 {
		if ra, rb := RandomResizedCropRect(w, h, a, 0.08, 1, 3.0/4, 4.0/3), RandomResizedCropRect(w, h, b, 0.08, 1, 3.0/4, 4.0/3); ra != rb {
			t.Fatalf("same seed gave %+v and %+v", ra, rb)
		}
	}
}

func TestRandomResizedCropFallback(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	// No window of area >= 8% of a 1000x10 strip with ratio <= 4/3 fits: the fallback is the centre
	// 13x10 (round(10 * 4/3) = 13); for the 10x1000 strip, 10x13 (round(10 / (3/4)) = 13).
	if got, want := RandomResizedCropRect(1000, 10, rng, 0.08, 1, 3.0/4, 4.0/3), (Rect{493, 0, 13, 10}); got != want {
		t.Errorf("wide strip: got %+v, want %+v", got, want)
	}
	if got, want := RandomResizedCropRect(10, 1000, rng, 0.08, 1, 3.0/4, 4.0/3), (Rect{0, 493, 10, 13}); got != want {
		t.Errorf("tall strip: got %+v, want %+v", got, want)
	}
	if got, want := RandomResizedCropRect(1, 1, rng, 0.08, 1, 3.0/4, 4.0/3), (Rect{0, 0, 1, 1}); got != want {
		t.Errorf("1x1: got %+v, want %+v", got, want)
	}
}

func TestScaleAugmentRect(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	seen := map[int]bool{}
	for range 5000 {
		rw, rh, crop := ScaleAugmentRect(500, 375, rng, 256, 480, 224)
		if rh < 256 || rh > 480 {
			t.Fatalf("shorter side %d outside [256, 480]", rh)
		}
		if wantW, _ := ShorterSideSize(500, 375, rh); rw != wantW {
			t.Fatalf("resized to %dx%d, want %dx%d", rw, rh, wantW, rh)
		}
		if crop.W != 224 || crop.H != 224 || !crop.In(rw, rh) {
			t.Fatalf("crop %+v not a 224 square inside %dx%d", crop, rw, rh)
		}
		seen[rh] = true
	}
	if !seen[256] || !seen[480] || len(seen) < 220 {
		t.Errorf("saw %d distinct sides (256: %v, 480: %v); want all of [256, 480] reachable", len(seen), seen[256], seen[480])
	}
}

func TestLightingShiftFollowsEigenvectors(t *testing.T) {
	const a = 0.1
	for i := range 3 {
		var alpha [3]float64
		alpha[i] = a
		s := LightingShift(alpha)
		for c := range 3 {
			want := 255 * a * ImageNetEigval[i] * ImageNetEigvec[c][i]
			if math.Abs(s[c]-want) > 1e-12 {
				t.Errorf("component %d channel %d: shift %v, want %v", i, c, s[c], want)
			}
		}
	}
	// The principal component moves all three channels the same way by about 0.2175 * 0.58 * 255 * alpha:
	// a brightness change of about 3.2 levels for alpha = 0.1.
	s := LightingShift([3]float64{a, 0, 0})
	for c := range 3 {
		if s[c] > -3.1 || s[c] < -3.3 {
			t.Errorf("channel %d: principal shift %v, want about -3.2", c, s[c])
		}
	}
}

func TestPCALighting(t *testing.T) {
	const h, w = 3, 4
	std := [3]float32{58.395, 57.12, 57.375}
	chw := make([]float32, 3*h*w)
	ToCHW(chw, grid4x3(), ImageNetMean, std)
	before := append([]float32(nil), chw...)
	rng := rand.New(rand.NewPCG(11, 12))
	PCALighting(chw, h, w, rng, 0.1, std)
	// The same draws, made here: three normals scaled by alphaStd.
	ref := rand.New(rand.NewPCG(11, 12))
	alpha := [3]float64{ref.NormFloat64() * 0.1, ref.NormFloat64() * 0.1, ref.NormFloat64() * 0.1}
	shift := LightingShift(alpha)
	for c := range 3 {
		want := float32(shift[c]) / std[c]
		for i := range h * w {
			j := c*h*w + i
			if got := chw[j] - before[j]; math.Abs(float64(got-want)) > 1e-5 {
				t.Fatalf("channel %d pixel %d moved by %v, want %v", c, i, got, want)
			}
		}
	}
	// A fixed alpha along the principal component moves the channel means of any image by exactly
	// 255 * alpha * 0.2175 * eigvec_0 / std: the same direction in all three channels (brightness).
	before = append(before[:0], chw...)
	addLighting(chw, h, w, [3]float64{0.1, 0, 0}, std)
	for c := range 3 {
		var mb, ma float64
		for i := range h * w {
			mb += float64(before[c*h*w+i])
			ma += float64(chw[c*h*w+i])
		}
		got := (ma - mb) / (h * w) * float64(std[c])
		if want := 255 * 0.1 * 0.2175 * ImageNetEigvec[c][0]; math.Abs(got-want) > 1e-4 {
			t.Errorf("channel %d mean moved %v levels, want %v", c, got, want)
		}
	}
}
