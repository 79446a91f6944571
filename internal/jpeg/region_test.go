package jpeg

import (
	"fmt"
	"image"
	"math/rand/v2"
	"testing"
)

// regionInputs are files of every layout the region logic treats differently: subsampling (which moves
// the left edge), restarts, progressive and multi-scan files (which decode every scan and convert only
// the region), and grey.
func regionInputs(t *testing.T) map[string][]byte {
	sub := func(restart int, separate bool, f ...[2]int) testEncoding {
		return testEncoding{factors: f, quality: 85, restart: restart, separate: separate}
	}
	in := map[string][]byte{
		"std 4:2:0 61x47":     encodeStd(t, photoImage(61, 47, 6), 75),
		"std grey 45x37":      encodeStd(t, grayImage(45, 37, 7), 90),
		"test 4:4:4 40x30":    encodeTest(photoImage(40, 30, 1), sub(0, false, [2]int{1, 1}, [2]int{1, 1}, [2]int{1, 1})),
		"test 4:1:1 restart":  encodeTest(photoImage(75, 41, 9), sub(2, false, [2]int{4, 1}, [2]int{1, 1}, [2]int{1, 1})),
		"test 4:4:0 53x61":    encodeTest(photoImage(53, 61, 9), sub(0, false, [2]int{1, 2}, [2]int{1, 1}, [2]int{1, 1})),
		"test separate 4:2:0": encodeTest(photoImage(50, 38, 2), sub(3, true, [2]int{2, 2}, [2]int{1, 1}, [2]int{1, 1})),
	}
	for _, f := range pillowFixtures {
		in["pillow "+f.name] = mustBase64(t, f.data)
	}
	return in
}

// TestDecodeRegion checks that a decode restricted to a region writes exactly the pixels of the full
// decode inside it, at every scale, and leaves the pixels outside it alone.
func TestDecodeRegion(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var d Decoder
	var full, part Dst
	for name, data := range regionInputs(t) {
		for _, s := range []int{1, 2, 4, 8} {
			if err := d.Decode(data, &full, Options{Scale: s}); err != nil {
				t.Fatalf("%s scale %d: %v", name, s, err)
			}
			for i := range 12 {
				x0, y0 := rng.IntN(full.W), rng.IntN(full.H)
				r := image.Rect(x0, y0, x0+1+rng.IntN(full.W-x0), y0+1+rng.IntN(full.H-y0))
				if i == 0 {
					r = image.Rect(-5, -5, full.W+5, full.H+5) // clipped to the whole image
				}
				part.Pix = make([]uint8, len(full.Pix))
				for k := range part.Pix {
					part.Pix[k] = 0xA5
				}
				if err := d.Decode(data, &part, Options{Scale: s, Region: r}); err != nil {
					t.Fatalf("%s scale %d region %v: %v", name, s, r, err)
				}
				if part.W != full.W || part.H != full.H {
					t.Fatalf("%s scale %d region %v: %dx%d, want %dx%d", name, s, r, part.W, part.H, full.W, full.H)
				}
				if msg := regionDiff(&part, &full, r); msg != "" {
					t.Errorf("%s scale %d region %v: %s", name, s, r, msg)
				}
			}
		}
	}
}

// regionDiff describes the first pixel inside r where got and want differ, or the first one outside
// the region's block-aligned surroundings that the decode wrote.
func regionDiff(got, want *Dst, r image.Rectangle) string {
	r = r.Intersect(image.Rect(0, 0, want.W, want.H))
	outer := image.Rect(r.Min.X&^3, r.Min.Y, r.Max.X, r.Max.Y) // the left edge may move to a chroma sample
	for y := range want.H {
		for x := range want.W {
			i := 3 * (y*want.W + x)
			in := image.Pt(x, y).In(r)
			for c := range 3 {
				g, w := got.Pix[i+c], want.Pix[i+c]
				if in && g != w {
					return fmt.Sprintf("pixel (%d, %d) channel %d is %d, want %d", x, y, c, g, w)
				}
				if !image.Pt(x, y).In(outer) && g != 0xA5 {
					return fmt.Sprintf("pixel (%d, %d) outside the region was written", x, y)
				}
			}
		}
	}
	return ""
}

// TestDecodeRegionTruncated checks that a file cut short below the region still fails: the decoder
// skips the scan data there but looks for the marker that ends it.
func TestDecodeRegionTruncated(t *testing.T) {
	data := encodeStd(t, photoImage(64, 160, 4), 85)
	var d Decoder
	var dst Dst
	top := Options{Region: image.Rect(0, 0, 16, 16)}
	if err := d.Decode(data, &dst, top); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{len(data) - 2, len(data) * 3 / 4, len(data) / 2} {
		if err := d.Decode(data[:n], &dst, top); err == nil {
			t.Errorf("cut to %d of %d bytes: no error with a region at the top", n, len(data))
		}
	}
	if err := d.Decode(data, &dst, Options{Region: image.Rect(70, 0, 80, 10)}); err == nil {
		t.Error("a region outside the image: no error")
	}
}
