// This file tests the parts of the exact mode: the accurate inverse DCT and the triangle-filter
// upsampling, each against its definition. The whole mode is checked against Pillow's own decodes in
// TestExactMatchesPillow.

package jpeg

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestExactMatchesPillow decodes every fixture in the exact mode and compares the pixels with Pillow's
// decode of it (Image.open(f).convert("RGB"), libjpeg-turbo underneath) through its SHA-256: they must be
// identical, not merely within a level. The fixtures cover baseline and progressive files, restart
// intervals, 4:4:4, 4:2:2, 4:2:0, 4:4:0, 4:1:1 and mixed sampling, grey, CMYK, Adobe RGB, odd sizes and
// chroma too narrow to interpolate. On a mismatch, the pixels sampled by the generator say by how much.
func TestExactMatchesPillow(t *testing.T) {
	var d Decoder
	var dst Dst
	for _, f := range pillowFixtures {
		if err := d.Decode(mustBase64(t, f.data), &dst, Options{Exact: true}); err != nil {
			t.Errorf("%s: %v", f.name, err)
			continue
		}
		sum := sha256.Sum256(dst.Pix)
		if hex.EncodeToString(sum[:]) == f.sha256 {
			continue
		}
		worst, where := 0, ""
		for _, p := range f.pixels {
			got := dst.Pix[3*(p.y*dst.W+p.x):][:3]
			for c := range 3 {
				if d := max(int(got[c])-int(p.rgb[c]), int(p.rgb[c])-int(got[c])); d > worst {
					worst, where = d, fmt.Sprintf(" at (%d,%d): %v, Pillow %v", p.x, p.y, got, p.rgb)
				}
			}
		}
		t.Errorf("%s: the %dx%d decode differs from Pillow's; among its %d sampled pixels by up to %d%s",
			f.name, dst.W, dst.H, len(f.pixels), worst, where)
	}
}

func TestAccurateIDCTConstants(t *testing.T) {
	c := func(k float64) float64 { return math.Cos(k * math.Pi / 16) }
	for _, k := range []struct {
		got  int64
		want float64
	}{
		{accC6, c(6)}, {accC2mC6, c(2) - c(6)}, {accC2pC6, c(2) + c(6)}, {accC3, c(3)},
		{accC1pC3mC5mC7, c(1) + c(3) - c(5) - c(7)}, {accC1pC3mC5pC7, c(1) + c(3) - c(5) + c(7)},
		{accC1pC3pC5mC7, c(1) + c(3) + c(5) - c(7)}, {accMC1pC3pC5mC7, -c(1) + c(3) + c(5) - c(7)},
		{accC3mC7, c(3) - c(7)}, {accC1pC3, c(1) + c(3)}, {accC3pC5, c(3) + c(5)}, {accC3mC5, c(3) - c(5)},
	} {
		if want := int64(math.Round(math.Sqrt2 * k.want * (1 << accBits))); k.got != want {
			t.Errorf("constant %d, want %d (sqrt2 x %.9f)", k.got, want, k.want)
		}
	}
}

// idctAccurateFull is idctAccurate without its short ways for flat columns and rows.
func idctAccurateFull(out []uint8, blk *[64]int32) {
	var ws [64]int32
	for v := range 8 {
		y0, y1, y2, y3, y4, y5, y6, y7 := accurate8(int64(blk[v]), int64(blk[8+v]), int64(blk[16+v]),
			int64(blk[24+v]), int64(blk[32+v]), int64(blk[40+v]), int64(blk[48+v]), int64(blk[56+v]),
			1<<(accShift1-1))
		for u, y := range [8]int64{y0, y1, y2, y3, y4, y5, y6, y7} {
			ws[8*u+v] = int32(y >> accShift1)
		}
	}
	for u := range 8 {
		r := ws[8*u : 8*u+8]
		y0, y1, y2, y3, y4, y5, y6, y7 := accurate8(int64(r[0]), int64(r[1]), int64(r[2]), int64(r[3]),
			int64(r[4]), int64(r[5]), int64(r[6]), int64(r[7]), 1<<(accShift2-1))
		for x, y := range [8]int64{y0, y1, y2, y3, y4, y5, y6, y7} {
			out[8*u+x] = accLimit[(y>>accShift2)&1023]
		}
	}
}

// TestIDCTAccurate checks the accurate transform against a floating-point inverse DCT (every sample
// within 1 of the exact value rounded), its short ways against the full computation, and the DC-only
// sample against both, on random blocks of every density.
func TestIDCTAccurate(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for iter := range 3000 {
		var blk [64]int32
		nz := 1 + rng.IntN(64)
		switch iter % 4 {
		case 0:
			nz = 1
		case 1:
			nz = 1 + rng.IntN(6) // sparse: mostly flat columns and rows
		}
		for i := range nz {
			blk[zigzag[i]] = int32(rng.IntN(121)-60) * int32(1+rng.IntN(12))
		}
		blk[0] = int32(rng.IntN(2001) - 1000)
		got, full := make([]uint8, 64), make([]uint8, 64)
		idctAccurate(got, 8, &blk)
		idctAccurateFull(full, &blk)
		if !bytes.Equal(got, full) {
			t.Fatalf("block %v: short ways give %v, the full transform %v", blk, got, full)
		}
		if nz == 1 {
			if s := dcSampleAccurate(blk[0]); got[0] != s || got[63] != s {
				t.Fatalf("DC %d: dcSampleAccurate %d, transform %d", blk[0], s, got[0])
			}
		}
		var deq [64]float64
		for i, c := range blk {
			deq[i] = float64(c)
		}
		for i, e := range floatIDCT(&deq) {
			if math.Abs(e-128) > 500 {
				continue // near the wrap-around of the range limit, which only corrupt data reaches
			}
			if d := float64(got[i]) - math.Round(max(0, min(255, e))); math.Abs(d) > 1 {
				t.Fatalf("block %v: sample (%d,%d) is %d, want %v", blk, i%8, i/8, got[i], math.Round(max(0, min(255, e))))
			}
		}
	}
}

// TestH2V1AsColumnSums checks the identity that lets the 2:1 horizontal filter share triangleRows with
// the 2:1 both ways one: with column sums of 4 times the sample and the biases h2v1Left and h2v1Right,
// it rounds (3 near + far) / 4 with 1 and 2, as libjpeg's does.
func TestH2V1AsColumnSums(t *testing.T) {
	for near := range int32(256) {
		for far := range int32(256) {
			if (12*near+4*far+h2v1Left)>>4 != (3*near+far+1)>>2 || (12*near+4*far+h2v1Right)>>4 != (3*near+far+2)>>2 {
				t.Fatalf("near %d, far %d: column sums round differently", near, far)
			}
		}
	}
	// A worked example: samples 10, 20, 40 interpolate to 10 13 17 25 35 40.
	out := make([]uint8, 6)
	in := []uint8{10, 20, 40}
	triangleRows(out, in, in, h2v1Left, h2v1Right)
	if want := []uint8{10, 13, 17, 25, 35, 40}; !bytes.Equal(out, want) {
		t.Errorf("triangle filter of %v: %v, want %v", in, out, want)
	}
}

// TestFusedUpsamplingMatchesUnfused checks yccTriangleRows against triangleRows on each chroma plane
// followed by yccRow, at even and odd widths, with both filters' biases.
func TestFusedUpsamplingMatchesUnfused(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	row := func(n int) []uint8 {
		r := make([]uint8, n)
		for i := range r {
			r[i] = uint8(rng.IntN(256))
		}
		return r
	}
	for _, n := range []int{3, 4, 5, 16, 37, 250} {
		for _, w := range []int{2*n - 1, 2 * n} {
			for _, b := range [][2]int32{{h2v1Left, h2v1Right}, {h2v2Left, h2v2Right}} {
				y, cbN, cbF, crN, crF := row(w), row(n), row(n), row(n), row(n)
				cb, cr := make([]uint8, 2*n), make([]uint8, 2*n)
				triangleRows(cb, cbN, cbF, b[0], b[1])
				triangleRows(cr, crN, crF, b[0], b[1])
				want, got := make([]uint8, 3*w), make([]uint8, 3*w)
				yccRow(want, y, cb[:w], cr[:w])
				yccTriangleRows(got, y, cbN, cbF, crN, crF, b[0], b[1])
				if !bytes.Equal(got, want) {
					t.Fatalf("%d chroma samples, width %d, biases %v: fused and unfused rows differ", n, w, b)
				}
			}
		}
	}
}

// TestAccurateRangeLimit checks the clamping table: v + 128 clamped for every v the transform gives on
// valid data, and wrapping beyond as libjpeg's table does.
func TestAccurateRangeLimit(t *testing.T) {
	for v := -512; v < 512; v++ {
		if got, want := accLimit[v&1023], uint8(min(max(v+128, 0), 255)); got != want {
			t.Fatalf("v=%d: %d, want %d", v, got, want)
		}
	}
	if accLimit[600&1023] != 0 || accLimit[(-600)&1023] != 255 {
		t.Errorf("values beyond +-512 should wrap around to the other end")
	}
}
