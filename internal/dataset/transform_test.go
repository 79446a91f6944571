package dataset

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
)

// rampImage is a c x h x w image whose pixel (ch, y, x) holds a distinct nonzero value.
func rampImage(c, h, w int) []uint8 {
	img := make([]uint8, c*h*w)
	for ch := range c {
		for y := range h {
			for x := range w {
				img[(ch*h+y)*w+x] = uint8(1 + (ch*61+y*w+x)%250)
			}
		}
	}
	return img
}

func TestCropFlipAtCentreWithoutFlipIsIdentity(t *testing.T) {
	src := rampImage(3, 32, 32)
	dst := make([]uint8, len(src))
	if err := CropFlip(dst, src, 3, 32, 32, CIFARPad, 4, 4, false); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dst, src) {
		t.Error("crop at offset (4, 4) without flip changed the image")
	}
}

func TestCropFlipMirrorsRows(t *testing.T) {
	const c, h, w = 3, 5, 7
	src := rampImage(c, h, w)
	dst := make([]uint8, len(src))
	if err := CropFlip(dst, src, c, h, w, 2, 2, 2, true); err != nil {
		t.Fatal(err)
	}
	for ch := range c {
		for y := range h {
			for x := range w {
				if got, want := dst[(ch*h+y)*w+x], src[(ch*h+y)*w+(w-1-x)]; got != want {
					t.Fatalf("flipped (%d, %d, %d) = %d, want %d", ch, y, x, got, want)
				}
			}
		}
	}
}

// Every offset and flip must agree with a naive pad-then-crop-then-flip reference, and the padding must be 0.
func TestCropFlipMatchesPaddedReference(t *testing.T) {
	const c, h, w, pad = 2, 6, 9, 3
	src := rampImage(c, h, w)
	dst := make([]uint8, len(src))
	ph, pw := h+2*pad, w+2*pad
	padded := make([]uint8, c*ph*pw)
	for ch := range c {
		for y := range h {
			for x := range w {
				padded[(ch*ph+y+pad)*pw+x+pad] = src[(ch*h+y)*w+x]
			}
		}
	}
	for oy := 0; oy <= 2*pad; oy++ {
		for ox := 0; ox <= 2*pad; ox++ {
			for _, flip := range []bool{false, true} {
				if err := CropFlip(dst, src, c, h, w, pad, ox, oy, flip); err != nil {
					t.Fatal(err)
				}
				for ch := range c {
					for y := range h {
						for x := range w {
							sx := x
							if flip {
								sx = w - 1 - x
							}
							want := padded[(ch*ph+y+oy)*pw+sx+ox]
							if got := dst[(ch*h+y)*w+x]; got != want {
								t.Fatalf("offset (%d, %d) flip %v: pixel (%d, %d, %d) = %d, want %d", ox, oy, flip, ch, y, x, got, want)
							}
						}
					}
				}
			}
		}
	}
}

func TestCropFlipPaddingIsZero(t *testing.T) {
	src := bytes.Repeat([]uint8{200}, 3*32*32)
	dst := make([]uint8, len(src))
	// Offset (0, 0) shifts the image 4 px right and down: the first 4 rows and columns are padding.
	for _, flip := range []bool{false, true} {
		if err := CropFlip(dst, src, 3, 32, 32, CIFARPad, 0, 0, flip); err != nil {
			t.Fatal(err)
		}
		for ch := range 3 {
			for y := range 32 {
				for x := range 32 {
					px := x
					if flip {
						px = 31 - x
					}
					want := uint8(200)
					if y < 4 || px < 4 {
						want = 0
					}
					if got := dst[(ch*32+y)*32+x]; got != want {
						t.Fatalf("flip %v: pixel (%d, %d, %d) = %d, want %d", flip, ch, y, x, got, want)
					}
				}
			}
		}
	}
}

func TestCropFlipRejectsBadArguments(t *testing.T) {
	img := make([]uint8, 3*4*4)
	if err := CropFlip(img, img[:10], 3, 4, 4, 1, 1, 1, false); err == nil || err.Error() != "dataset: crop of a 3x4x4 image needs 48-byte src and dst (got 10 and 48)" {
		t.Errorf("short src: error = %v", err)
	}
	if err := CropFlip(img, make([]uint8, 48), 3, 4, 4, 1, 3, 0, false); err == nil || err.Error() != "dataset: crop offset (3, 0) outside [0, 2] for padding 1" {
		t.Errorf("offset 3 with pad 1: error = %v", err)
	}
}

func TestRandomCropFlipIsDrivenByRNG(t *testing.T) {
	src := rampImage(3, 32, 32)
	a, b := make([]uint8, len(src)), make([]uint8, len(src))
	seen := map[string]bool{}
	for seed := range uint64(200) {
		if err := RandomCropFlip(a, src, 3, 32, 32, CIFARPad, rand.New(rand.NewPCG(seed, 1))); err != nil {
			t.Fatal(err)
		}
		if err := RandomCropFlip(b, src, 3, 32, 32, CIFARPad, rand.New(rand.NewPCG(seed, 1))); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Fatalf("seed %d: two runs from the same rng state differ", seed)
		}
		seen[string(a)] = true
	}
	// 81 offsets x 2 flips = 162 outcomes; 200 draws should hit well over half of them.
	if len(seen) < 90 {
		t.Errorf("200 random augmentations produced only %d distinct images", len(seen))
	}
}

func TestNormalize(t *testing.T) {
	src := []uint8{0, 255, 100, 10, 20, 30}
	dst := make([]float32, len(src))
	norm := Normalization{Mean: [3]float32{100, 20, 0}, Std: [3]float32{50, 10, 1}}
	if err := Normalize(dst, src, 3, 1, 2, norm); err != nil {
		t.Fatal(err)
	}
	want := []float32{-2, 3.1, 8, -1, 20, 30}
	for i := range want {
		if math.Abs(float64(dst[i]-want[i])) > 1e-6 {
			t.Errorf("dst[%d] = %v, want %v", i, dst[i], want[i])
		}
	}
	if err := Normalize(dst, src, 3, 1, 2, Normalization{Mean: [3]float32{1, 2, 3}}); err == nil {
		t.Error("Normalize with zero std succeeded")
	}
	if err := Normalize(dst[:5], src, 3, 1, 2, norm); err == nil {
		t.Error("Normalize into a short dst succeeded")
	}
}

func TestNormalizationValidate(t *testing.T) {
	ok := Normalization{Mean: [3]float32{1, 2, 3}, Std: [3]float32{1, 1, 1}}
	for _, tc := range []struct {
		norm Normalization
		c    int
		want string
	}{
		{ok, 3, ""},
		{Normalization{Std: [3]float32{1}}, 1, ""},
		{ok, 4, "dataset: normalisation covers 1 to 3 channels (got 4)"},
		{Normalization{Std: [3]float32{1, 0, 1}}, 3, "dataset: normalisation std of channel 1 is 0; it must be > 0 and finite (unset? compute it with ComputeNormalization)"},
		{Normalization{Mean: [3]float32{float32(math.NaN())}, Std: [3]float32{1}}, 1, "dataset: normalisation mean of channel 0 is NaN; it must be finite"},
	} {
		err := tc.norm.Validate(tc.c)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("Validate(%v, %d) = %q, want %q", tc.norm, tc.c, got, tc.want)
		}
	}
}

// constantSource is a test source whose example i has every pixel of channel ch equal to values[i][ch].
type constantSource struct {
	values [][3]uint8
	failAt int // Get fails for this index; -1 never
}

func (s constantSource) Len() int                  { return len(s.values) }
func (s constantSource) NumClasses() int           { return 2 }
func (s constantSource) ImageShape() (c, h, w int) { return 3, 2, 2 }
func (s constantSource) Get(i int, dst []uint8) (int, error) {
	if i == s.failAt {
		return 0, errTestGet
	}
	for ch := range 3 {
		for p := range 4 {
			dst[ch*4+p] = s.values[i][ch]
		}
	}
	return i % 2, nil
}

type testError string

func (e testError) Error() string { return string(e) }

const errTestGet = testError("test source: broken example")

func TestComputeNormalization(t *testing.T) {
	src := constantSource{values: [][3]uint8{{0, 10, 7}, {100, 30, 9}, {200, 50, 8}, {40, 70, 8}}, failAt: -1}
	norm, err := ComputeNormalization(src, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := Normalization{
		Mean: [3]float32{85, 40, 8},
		Std:  [3]float32{float32(math.Sqrt((85*85 + 15*15 + 115*115 + 45*45) / 4.0)), float32(math.Sqrt(500)), float32(math.Sqrt(0.5))},
	}
	for ch := range 3 {
		if math.Abs(float64(norm.Mean[ch]-want.Mean[ch])) > 1e-4 || math.Abs(float64(norm.Std[ch]-want.Std[ch])) > 1e-4 {
			t.Errorf("channel %d: mean %v std %v, want %v and %v", ch, norm.Mean[ch], norm.Std[ch], want.Mean[ch], want.Std[ch])
		}
	}
	// Two samples of four take indices 0 and 2.
	half, err := ComputeNormalization(src, 2)
	if err != nil {
		t.Fatal(err)
	}
	if half.Mean != [3]float32{100, 30, 7.5} {
		t.Errorf("2-sample means = %v, want [100 30 7.5]", half.Mean)
	}
	flat := constantSource{values: [][3]uint8{{1, 2, 3}, {4, 5, 3}}, failAt: -1}
	if _, err := ComputeNormalization(flat, 0); err == nil || err.Error() != "dataset: channel 2 is constant (3) over 2 examples; cannot normalise by a zero std" {
		t.Errorf("constant channel: error = %v", err)
	}
	src.failAt = 3
	if _, err := ComputeNormalization(src, 0); err == nil || err.Error() != "dataset: computing normalisation: example 3: test source: broken example" {
		t.Errorf("failing source: error = %v", err)
	}
}

func TestComputeNormalizationOfSynthetic(t *testing.T) {
	s := mustSynthetic(t, 1, 1000, SplitTrain)
	norm, err := ComputeNormalization(s, 500)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("synthetic normalisation: %+v", norm)
	for ch := range 3 {
		if norm.Mean[ch] < 100 || norm.Mean[ch] > 156 || norm.Std[ch] < 40 || norm.Std[ch] > 90 {
			t.Errorf("channel %d: mean %v std %v; want mid-grey and a wide spread", ch, norm.Mean[ch], norm.Std[ch])
		}
	}
}
