package jpeg

import (
	"bytes"
	"image"
	stdjpeg "image/jpeg"
	"math"
	"testing"
)

// benchPhoto is a 500x375 quality-90 4:2:0 JPEG of a photo-like image, about 88 KB: the size and
// density of an ImageNet training image.
func benchPhoto(b *testing.B) []byte {
	b.Helper()
	data := encodeStd(b, photoImage(500, 375, 40), 90)
	if len(data) < 80_000 || len(data) > 110_000 {
		b.Fatalf("benchmark JPEG is %d bytes, want 80-110 KB", len(data))
	}
	return data
}

func reportImages(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkDecode compares this package with image/jpeg on the same file. image/jpeg returns YCbCr planes;
// "image-jpeg+rgb" adds the conversion to interleaved RGB (with this package's row converter) so that
// both produce the same thing.
func BenchmarkDecode(b *testing.B) {
	data := benchPhoto(b)
	for _, c := range []struct {
		name string
		opt  Options
	}{
		{"ours", Options{}},
		{"ours-exact", Options{Exact: true}},
		{"ours-scale2", Options{Scale: 2}},
		{"ours-scale4", Options{Scale: 4}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var d Decoder
			var dst Dst
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if err := d.Decode(data, &dst, c.opt); err != nil {
					b.Fatal(err)
				}
			}
			reportImages(b)
		})
	}
	b.Run("image-jpeg", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := stdjpeg.Decode(bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
		reportImages(b)
	})
	b.Run("image-jpeg+rgb", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		var pix []uint8
		for b.Loop() {
			img, err := stdjpeg.Decode(bytes.NewReader(data))
			if err != nil {
				b.Fatal(err)
			}
			m := img.(*image.YCbCr)
			w, h := m.Rect.Dx(), m.Rect.Dy()
			if pix == nil {
				pix = make([]uint8, 3*w*h)
			}
			for y := range h {
				c := (y / 2) * m.CStride
				yccRowHalf(pix[3*w*y:3*w*(y+1)], m.Y[y*m.YStride:y*m.YStride+w], m.Cb[c:c+(w+1)/2], m.Cr[c:c+(w+1)/2])
			}
		}
		reportImages(b)
	})
}

// BenchmarkProgressive decodes the largest progressive fixture (64x48); it is small, so it mostly
// measures per-scan and per-image overheads.
func BenchmarkProgressive(b *testing.B) {
	var data []byte
	for _, f := range pillowFixtures {
		if f.name == "fixtureProgressive420" {
			data = mustBase64(b, f.data)
		}
	}
	b.Run("ours", func(b *testing.B) {
		var d Decoder
		var dst Dst
		for b.Loop() {
			if err := d.Decode(data, &dst, Options{}); err != nil {
				b.Fatal(err)
			}
		}
		reportImages(b)
	})
	b.Run("image-jpeg", func(b *testing.B) {
		for b.Loop() {
			if _, err := stdjpeg.Decode(bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
		reportImages(b)
	})
}

// benchBlocks returns n dequantised luma blocks of the benchmark photo, quantised as at quality 90 (a
// table of 2 to 9), as the decoder sees them: the forward DCT of each 8x8 block, rounded to the table.
func benchBlocks(n int) [][64]int32 {
	img := photoImage(500, 375, 40)
	var q [64]uint16
	for i := range q {
		q[i] = uint16(2 + (i%8+i/8)/2)
	}
	var qs [64]int32
	prescale(&qs, &q, 1)
	blocks := make([][64]int32, n)
	for i := range blocks {
		bx, by := (i*7)%62, (i*3)%46
		var c [64]int16
		for v := range 8 {
			for u := range 8 {
				sum := 0.0
				for y := range 8 {
					for x := range 8 {
						p := img.Pix[(by*8+y)*img.Stride+4*(bx*8+x):]
						l := 0.299*float64(p[0]) + 0.587*float64(p[1]) + 0.114*float64(p[2]) - 128
						sum += l * math.Cos(float64((2*x+1)*u)*math.Pi/16) * math.Cos(float64((2*y+1)*v)*math.Pi/16)
					}
				}
				cu, cv := 1.0, 1.0
				if u == 0 {
					cu = math.Sqrt2 / 2
				}
				if v == 0 {
					cv = math.Sqrt2 / 2
				}
				c[v*8+u] = int16(math.Round(sum * cu * cv / 4 / float64(q[v*8+u])))
			}
		}
		dequantize(&blocks[i], &c, &qs)
	}
	return blocks
}

// BenchmarkIDCT8 runs the full inverse DCT on 256 blocks per iteration.
func BenchmarkIDCT8(b *testing.B) {
	blocks := benchBlocks(256)
	out := make([]uint8, 64*8)
	b.SetBytes(int64(len(blocks) * 64)) // output samples
	for b.Loop() {
		for i := range blocks {
			idct8(out[(i%8)*8:], 64, &blocks[i])
		}
	}
}

// BenchmarkColor420 converts 500x375 pixels of 4:2:0 YCbCr rows to RGB per iteration.
func BenchmarkColor420(b *testing.B) {
	img, err := stdjpeg.Decode(bytes.NewReader(benchPhoto(b)))
	if err != nil {
		b.Fatal(err)
	}
	m := img.(*image.YCbCr)
	w, h := m.Rect.Dx(), m.Rect.Dy()
	out := make([]uint8, 3*w)
	b.SetBytes(int64(3 * w * h)) // output bytes
	for b.Loop() {
		for y := range h {
			c := (y / 2) * m.CStride
			yccRowHalf(out, m.Y[y*m.YStride:y*m.YStride+w], m.Cb[c:c+(w+1)/2], m.Cr[c:c+(w+1)/2])
		}
	}
}
