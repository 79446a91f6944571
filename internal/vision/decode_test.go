package vision

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cmykJPEG is a 16x16 4-component Adobe CMYK JPEG (APP14 transform 0, 4:4:4, quality 95) with four 8x8
// quadrants: top-left no ink, top-right cyan (C=255), bottom-left yellow (Y=255), bottom-right K=128.
// Made once with Pillow 13.0.0:
//
//	im = Image.new("CMYK", (16, 16)); im.putpixel(...) per quadrant
//	im.save(buf, "JPEG", quality=95, subsampling=0)
//
// Pillow's own convert("RGB") of it gives (127, 127, 127) in the bottom-right quadrant, and Decode the same.
const cmykJPEG = "/9j/7gAOQWRvYmUAZAAAAAAA/9sAQwACAQEBAQECAQEBAgICAgIEAwICAgIFBAQDBAYFBgYGBQYGBgcJCAYHCQcGBggLCAkKCgoKCgYICwwLCgwJCgoK/8AAFAgAEAAQBEMRAE0RAFkRAEsRAP/EAB8AAAEFAQEBAQEBAAAAAAAAAAABAgMEBQYHCAkKC//EALUQAAIBAwMCBAMFBQQEAAABfQECAwAEEQUSITFBBhNRYQcicRQygZGhCCNCscEVUtHwJDNicoIJChYXGBkaJSYnKCkqNDU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6g4SFhoeIiYqSk5SVlpeYmZqio6Slpqeoqaqys7S1tre4ubrCw8TFxsfIycrS09TV1tfY2drh4uPk5ebn6Onq8fLz9PX29/j5+v/aAA4EQwBNAFkASwAAPwD9/K/fyv38r9/K/gDooor+/wAor+AOiiiv7/K/n/r/2Q=="

// progressiveJPEG is a 16x16 progressive JPEG (4:4:4, quality 95) with 8x8 quadrants red, green, blue and
// grey 128, made once with Pillow 13.0.0: im.save(buf, "JPEG", quality=95, progressive=True, subsampling=0).
// Pillow decodes the quadrant centres to (254,0,0), (0,255,1), (0,0,254), (128,128,128), and Decode the same.
const progressiveJPEG = "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAIBAQEBAQIBAQECAgICAgQDAgICAgUEBAMEBgUGBgYFBgYGBwkIBgcJBwYGCAsICQoKCgoKBggLDAsKDAkKCgr/2wBDAQICAgICAgUDAwUKBwYHCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgr/wgARCAAQABADAREAAhEBAxEB/8QAFQABAQAAAAAAAAAAAAAAAAAACAf/xAAXAQADAQAAAAAAAAAAAAAAAAAHCAkG/9oADAMBAAIQAxAAAAGLil/koLYVg20zWMZAdV//xAAUEAEAAAAAAAAAAAAAAAAAAAAg/9oACAEBAAEFAh//xAAUEQEAAAAAAAAAAAAAAAAAAAAg/9oACAEDAQE/AR//xAAUEQEAAAAAAAAAAAAAAAAAAAAg/9oACAECAQE/AR//xAAUEAEAAAAAAAAAAAAAAAAAAAAg/9oACAEBAAY/Ah//xAAUEAEAAAAAAAAAAAAAAAAAAAAg/9oACAEBAAE/IR//2gAMAwEAAgADAAAAEAAP/8QAFBEBAAAAAAAAAAAAAAAAAAAAIP/aAAgBAwEBPxAf/8QAFBEBAAAAAAAAAAAAAAAAAAAAIP/aAAgBAgEBPxAf/8QAFBABAAAAAAAAAAAAAAAAAAAAIP/aAAgBAQABPxAf/9k="

func mustBase64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func encodeJPEG(t testing.TB, img image.Image, quality int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: quality}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// smoothRGBA is a small image of gentle gradients, which JPEG reproduces closely.
func smoothRGBA(w, h int) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			m.SetRGBA(x, y, color.RGBA{uint8(40 + 150*x/w), uint8(200 - 120*y/h), uint8(60 + 50*(x+y)/(w+h)), 255})
		}
	}
	return m
}

func pixel(img *Image, x, y int) [3]uint8 {
	i := 3 * (y*img.W + x)
	return [3]uint8{img.Pix[i], img.Pix[i+1], img.Pix[i+2]}
}

func near(a, b [3]uint8, tol int) bool {
	for c := range 3 {
		if d := int(a[c]) - int(b[c]); d > tol || d < -tol {
			return false
		}
	}
	return true
}

// refYCbCr is the JFIF conversion in float64, rounded half up and clamped.
func refYCbCr(y, cb, cr uint8) [3]uint8 {
	yf, cbf, crf := float64(y), float64(cb)-128, float64(cr)-128
	c := func(v float64) uint8 { return uint8(max(0, min(255, math.Floor(v+0.5)))) }
	return [3]uint8{c(yf + 1.402*crf), c(yf - 0.344136*cbf - 0.714136*crf), c(yf + 1.772*cbf)}
}

func TestYCbCrAllSubsampleRatios(t *testing.T) {
	ratios := []image.YCbCrSubsampleRatio{
		image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420,
		image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410,
	}
	for _, ratio := range ratios {
		full := image.NewYCbCr(image.Rect(0, 0, 13, 7), ratio)
		seed := uint32(12345)
		next := func() uint8 { seed = seed*1664525 + 1013904223; return uint8(seed >> 24) }
		for i := range full.Y {
			full.Y[i] = next()
		}
		for i := range full.Cb {
			full.Cb[i], full.Cr[i] = next(), next()
		}
		// The whole image, and a sub-image whose origin is not on a chroma sample boundary.
		for _, m := range []*image.YCbCr{full, full.SubImage(image.Rect(3, 1, 12, 6)).(*image.YCbCr)} {
			var dst Image
			toRGB(&dst, m)
			b := m.Bounds()
			if dst.W != b.Dx() || dst.H != b.Dy() {
				t.Fatalf("%v: got %dx%d, want %dx%d", ratio, dst.W, dst.H, b.Dx(), b.Dy())
			}
			exact := 0
			for y := b.Min.Y; y < b.Max.Y; y++ {
				for x := b.Min.X; x < b.Max.X; x++ {
					ci := m.COffset(x, y)
					want := refYCbCr(m.Y[m.YOffset(x, y)], m.Cb[ci], m.Cr[ci])
					got := pixel(&dst, x-b.Min.X, y-b.Min.Y)
					if !near(got, want, 1) {
						t.Fatalf("%v at (%d,%d): got %v, want %v", ratio, x, y, got, want)
					}
					if got == want {
						exact++
					}
				}
			}
			// Fixed point may differ from float only on exact .5 ties.
			if n := b.Dx() * b.Dy(); exact < n*99/100 {
				t.Errorf("%v: only %d of %d pixels match the float reference exactly", ratio, exact, n)
			}
		}
	}
}

func TestYCbCrClampsAndRounds(t *testing.T) {
	m := image.NewYCbCr(image.Rect(0, 0, 4, 1), image.YCbCrSubsampleRatio444)
	copy(m.Y, []uint8{0, 255, 128, 100})
	copy(m.Cb, []uint8{0, 255, 128, 128})
	copy(m.Cr, []uint8{0, 255, 128, 129})
	var dst Image
	toRGB(&dst, m)
	// (0, 0, 0): R = -179.5 -> 0, G = 0 + 44.05 + 91.41 = 135.46 -> 135, B = -226.8 -> 0.
	// (255, 255, 255): R = 433 -> 255, G = 255 - 43.7 - 90.7 = 120.6 -> 121, B -> 255.
	// (100, 128, 129): R = 101.402 -> 101, G = 99.286 -> 99, B = 100.
	want := []uint8{0, 135, 0, 255, 121, 255, 128, 128, 128, 101, 99, 100}
	if !bytes.Equal(dst.Pix, want) {
		t.Errorf("got %v, want %v", dst.Pix, want)
	}
}

func TestDecodeJPEGColour(t *testing.T) {
	src := smoothRGBA(32, 24)
	data := encodeJPEG(t, src, 95)
	var dst Image
	f, err := Decode(data, &dst)
	if err != nil || f != FormatJPEG {
		t.Fatalf("Decode: %v, %v", f, err)
	}
	if dst.W != 32 || dst.H != 24 {
		t.Fatalf("got %dx%d, want 32x24", dst.W, dst.H)
	}
	for y := range 24 {
		for x := range 32 {
			c := src.RGBAAt(x, y)
			if got := pixel(&dst, x, y); !near(got, [3]uint8{c.R, c.G, c.B}, 8) {
				t.Fatalf("(%d,%d): got %v, want about %v", x, y, got, c)
			}
		}
	}
}

func TestDecodeGrayJPEG(t *testing.T) {
	g := image.NewGray(image.Rect(0, 0, 16, 8))
	for i := range g.Pix {
		g.Pix[i] = uint8(50 + i%16*8)
	}
	data := encodeJPEG(t, g, 100)
	var dst Image
	if _, err := Decode(data, &dst); err != nil {
		t.Fatal(err)
	}
	for y := range 8 {
		for x := range 16 {
			v := g.GrayAt(x, y).Y
			got := pixel(&dst, x, y)
			if got[0] != got[1] || got[1] != got[2] || !near(got, [3]uint8{v, v, v}, 3) {
				t.Fatalf("(%d,%d): got %v, want grey about %d", x, y, got, v)
			}
		}
	}
}

func TestDecodeCMYKJPEG(t *testing.T) {
	var dst Image
	f, err := Decode(mustBase64(t, cmykJPEG), &dst)
	if err != nil || f != FormatJPEG {
		t.Fatalf("Decode: %v, %v", f, err)
	}
	want := map[[2]int][3]uint8{
		{4, 4}:   {255, 255, 255}, // no ink: white
		{12, 4}:  {0, 255, 255},   // cyan
		{4, 12}:  {255, 255, 0},   // yellow
		{12, 12}: {127, 127, 127}, // half black
	}
	for p, w := range want {
		if got := pixel(&dst, p[0], p[1]); got != w {
			t.Errorf("(%d,%d): got %v, want about %v", p[0], p[1], got, w)
		}
	}
}

func TestDecodeProgressiveJPEG(t *testing.T) {
	var dst Image
	if _, err := Decode(mustBase64(t, progressiveJPEG), &dst); err != nil {
		t.Fatal(err)
	}
	want := map[[2]int][3]uint8{{4, 4}: {254, 0, 0}, {12, 4}: {0, 255, 1}, {4, 12}: {0, 0, 254}, {12, 12}: {128, 128, 128}}
	for p, w := range want {
		if got := pixel(&dst, p[0], p[1]); got != w {
			t.Errorf("(%d,%d): got %v, want about %v", p[0], p[1], got, w)
		}
	}
}

func TestDecodePNGNamedJPEG(t *testing.T) {
	src := smoothRGBA(5, 3)
	path := filepath.Join(t.TempDir(), "n01440764_10043.JPEG")
	if err := os.WriteFile(path, encodePNG(t, src), 0o644); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var dst Image
	f, err := Decode(data, &dst)
	if err != nil || f != FormatPNG {
		t.Fatalf("Decode: %v, %v; want PNG", f, err)
	}
	for y := range 3 {
		for x := range 5 {
			c := src.RGBAAt(x, y)
			if got := pixel(&dst, x, y); got != [3]uint8{c.R, c.G, c.B} {
				t.Fatalf("(%d,%d): got %v, want %v", x, y, got, c)
			}
		}
	}
}

// Each colour model image/png can return, encoded and decoded, must give exact pixels.
func TestDecodePNGColourModels(t *testing.T) {
	r := image.Rect(0, 0, 3, 2)
	gray := image.NewGray(r)
	gray16 := image.NewGray16(r)
	nrgba := image.NewNRGBA(r)
	nrgba64 := image.NewNRGBA64(r)
	pal := image.NewPaletted(r, color.Palette{color.RGBA{10, 20, 30, 255}, color.NRGBA{200, 100, 50, 128}})
	want := make([][3]uint8, 6)
	for i := range 6 {
		x, y := i%3, i/3
		v := uint8(40 * i)
		gray.SetGray(x, y, color.Gray{v})
		gray16.SetGray16(x, y, color.Gray16{uint16(v)<<8 | 0x7F})
		nrgba.SetNRGBA(x, y, color.NRGBA{v, v + 1, v + 2, uint8(255 - 30*i)})
		nrgba64.SetNRGBA64(x, y, color.NRGBA64{uint16(v) << 8, uint16(v+1)<<8 | 0xFF, uint16(v+2) << 8, 0x8000})
		pal.SetColorIndex(x, y, uint8(i%2))
		want[i] = [3]uint8{v, v, v}
	}
	check := func(name string, img image.Image, want func(i int) [3]uint8) {
		t.Helper()
		var dst Image
		f, err := Decode(encodePNG(t, img), &dst)
		if err != nil || f != FormatPNG {
			t.Fatalf("%s: %v, %v", name, f, err)
		}
		for i := range 6 {
			if got := pixel(&dst, i%3, i/3); got != want(i) {
				t.Errorf("%s pixel %d: got %v, want %v", name, i, got, want(i))
			}
		}
	}
	grey := func(i int) [3]uint8 { v := uint8(40 * i); return [3]uint8{v, v, v} }
	rgb := func(i int) [3]uint8 { v := uint8(40 * i); return [3]uint8{v, v + 1, v + 2} }
	check("gray", gray, grey)
	check("gray16", gray16, grey)
	check("nrgba", nrgba, rgb) // alpha dropped, colour kept
	check("nrgba64", nrgba64, rgb)
	check("paletted", pal, func(i int) [3]uint8 {
		if i%2 == 0 {
			return [3]uint8{10, 20, 30}
		}
		return [3]uint8{200, 100, 50}
	})
	check("rgba", smoothRGBA(3, 2), func(i int) [3]uint8 {
		c := smoothRGBA(3, 2).RGBAAt(i%3, i/3)
		return [3]uint8{c.R, c.G, c.B}
	})
}

func TestToRGBPremultipliedAndGeneric(t *testing.T) {
	rgba := image.NewRGBA(image.Rect(0, 0, 3, 1))
	copy(rgba.Pix, []uint8{50, 100, 0, 100, 9, 9, 9, 0, 1, 2, 3, 255})
	var dst Image
	toRGB(&dst, rgba)
	// 50*255/100 = 127.5 -> 128, 100*255/100 = 255; alpha 0 -> black; opaque unchanged.
	// 16-bit: 0x4000 / 0x8000 alpha -> 0x8000 -> 0x80.
	if want := []uint8{128, 255, 0, 0, 0, 0, 1, 2, 3}; !bytes.Equal(dst.Pix, want) {
		t.Errorf("RGBA: got %v, want %v", dst.Pix, want)
	}
	rgba64 := image.NewRGBA64(image.Rect(0, 0, 1, 1))
	rgba64.SetRGBA64(0, 0, color.RGBA64{0x4000, 0x8000, 0, 0x8000})
	toRGB(&dst, rgba64)
	if want := []uint8{0x80, 0xFF, 0}; !bytes.Equal(dst.Pix, want) {
		t.Errorf("RGBA64: got %v, want %v", dst.Pix, want)
	}
	// image.Alpha has no fast path: an opaque alpha sample is white through NRGBA.
	alpha := image.NewAlpha(image.Rect(0, 0, 2, 1))
	copy(alpha.Pix, []uint8{255, 0})
	toRGB(&dst, alpha)
	if want := []uint8{255, 255, 255, 0, 0, 0}; !bytes.Equal(dst.Pix, want) {
		t.Errorf("Alpha: got %v, want %v", dst.Pix, want)
	}
}

func TestDecodeErrors(t *testing.T) {
	jpg := encodeJPEG(t, smoothRGBA(96, 96), 90)
	pngData := encodePNG(t, smoothRGBA(32, 32))
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "vision: empty image data (0 bytes); the file is empty or was not read"},
		{"gif", []byte("GIF89a\x01\x00"), "vision: unknown image format (first bytes 47 49 46 38); only JPEG and PNG are supported"},
		{"short", []byte{0xFF, 0xD8}, "vision: unknown image format (first bytes ff d8); only JPEG and PNG are supported"},
		{"jpeg magic only", []byte{0xFF, 0xD8, 0xFF}, "vision: corrupt JPEG header: unexpected EOF"},
		{"jpeg truncated in scan", jpg[:len(jpg)-len(jpg)/4], "vision: corrupt or truncated JPEG: jpeg: corrupt or truncated data: the scan data ends in MCU row 3 of 6"},
		{"png truncated", pngData[:len(pngData)-30], "vision: corrupt or truncated PNG: png: invalid format: not enough pixel data"},
	} {
		var dst Image
		_, err := Decode(tc.data, &dst)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: got error %v, want %q", tc.name, err, tc.want)
		}
	}
	// Every truncation of a valid file is an error, never a panic or a silent success; the only exception
	// is a JPEG that lacks just its 2-byte end-of-image marker, which decodes whole (as libjpeg does).
	for _, data := range [][]byte{jpg[:len(jpg)-2], pngData} {
		for n := range len(data) - 1 {
			var dst Image
			if _, err := Decode(data[:n], &dst); err == nil {
				t.Fatalf("%d of %d bytes decoded without error", n, len(data))
			}
		}
	}
}

func TestDecodeRejectsHugeHeader(t *testing.T) {
	data := encodePNG(t, image.NewGray(image.Rect(0, 0, 1, 1)))
	// IHDR's width and height are bytes 16..23, its CRC (over type and data, bytes 12..28) bytes 29..32.
	data = append([]byte(nil), data...)
	copy(data[16:24], []byte{0, 0, 0xFF, 0xFF, 0, 0, 0xFF, 0xFF})
	binary.BigEndian.PutUint32(data[29:33], crc32.ChecksumIEEE(data[12:29]))
	var dst Image
	_, err := Decode(data, &dst)
	if err == nil {
		t.Fatal("decoded a 65535x65535 header")
	}
	if want := "vision: PNG is 65535x65535 pixels, more than the 67108864 this decoder accepts; downscale the file"; err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
}

func TestDecodeConfig(t *testing.T) {
	for _, tc := range []struct {
		data []byte
		f    Format
	}{
		{encodeJPEG(t, smoothRGBA(37, 11), 80), FormatJPEG},
		{encodePNG(t, smoothRGBA(37, 11)), FormatPNG},
	} {
		w, h, f, err := DecodeConfig(tc.data)
		if err != nil || w != 37 || h != 11 || f != tc.f {
			t.Errorf("got %dx%d %v %v, want 37x11 %v", w, h, f, err, tc.f)
		}
	}
}

func TestDecodeReusesBuffer(t *testing.T) {
	big := encodeJPEG(t, smoothRGBA(64, 48), 90)
	small := encodePNG(t, smoothRGBA(8, 8))
	var dst Image
	if _, err := Decode(big, &dst); err != nil {
		t.Fatal(err)
	}
	p := &dst.Pix[:1][0]
	if _, err := Decode(small, &dst); err != nil {
		t.Fatal(err)
	}
	if &dst.Pix[:1][0] != p || len(dst.Pix) != 8*8*3 {
		t.Errorf("smaller image did not reuse the buffer (len %d)", len(dst.Pix))
	}
}

func TestDecodeScaledPicksTheLargestReduction(t *testing.T) {
	jpg := encodeJPEG(t, smoothRGBA(40, 30), 90)
	for _, tc := range []struct {
		minW, minH, w, h int
	}{{0, 0, 40, 30}, {5, 4, 5, 4}, {10, 4, 10, 8}, {11, 1, 20, 15}, {21, 1, 40, 30}} {
		var dst Image
		if _, err := DecodeScaled(jpg, &dst, DecodeOptions{MinW: tc.minW, MinH: tc.minH}); err != nil {
			t.Fatal(err)
		}
		if dst.W != tc.w || dst.H != tc.h {
			t.Errorf("hint %dx%d: got %dx%d, want %dx%d", tc.minW, tc.minH, dst.W, dst.H, tc.w, tc.h)
		}
	}
	// PNG has no reduced-scale mode: always full size.
	var dst Image
	if _, err := DecodeScaled(encodePNG(t, smoothRGBA(40, 30)), &dst, DecodeOptions{MinW: 5, MinH: 4}); err != nil || dst.W != 40 {
		t.Errorf("PNG: %dx%d, %v", dst.W, dst.H, err)
	}
}

// FuzzDecode checks that no input panics, also when decoding only a window at a reduced scale, and that a
// successful decode agrees with DecodeConfig. Run it with
// go test -run '^$' -fuzz FuzzDecode -fuzztime 30s ./internal/vision/
func FuzzDecode(f *testing.F) {
	f.Add(encodeJPEG(f, smoothRGBA(8, 8), 75))
	f.Add(encodePNG(f, smoothRGBA(4, 4)))
	f.Add(mustBase64(f, cmykJPEG))
	f.Add(mustBase64(f, progressiveJPEG))
	f.Fuzz(func(t *testing.T, data []byte) {
		var dst Image
		_, err := Decode(data, &dst)
		if err != nil {
			return
		}
		w, h, _, err := DecodeConfig(data)
		if err != nil || w != dst.W || h != dst.H || len(dst.Pix) != 3*w*h {
			t.Fatalf("decoded %dx%d (%d bytes) but DecodeConfig says %dx%d, %v", dst.W, dst.H, len(dst.Pix), w, h, err)
		}
		// A crop's decode: a window and a size hint that allow a reduced scale.
		win := Rect{w / 4, h / 3, max(w/2, 1), max(h/2, 1)}
		if _, err := DecodeScaled(data, &dst, DecodeOptions{MinW: w / 4, MinH: h / 4, Window: win}); err == nil {
			if r := ReducedRect(win, w, h, dst.W, dst.H); !r.In(dst.W, dst.H) {
				t.Fatalf("window %+v maps to %+v outside the decoded %dx%d", win, r, dst.W, dst.H)
			}
		}
	})
}

// TestDecodeScaledWindow checks that a decode told the window it will be read through gives the pixels
// of the whole decode inside ReducedRect of that window, at full and reduced scale.
func TestDecodeScaledWindow(t *testing.T) {
	jpg := encodeJPEG(t, smoothRGBA(93, 71), 90)
	for _, tc := range []struct {
		win        Rect
		minW, minH int
	}{
		{Rect{0, 0, 93, 71}, 0, 0},
		{Rect{17, 9, 40, 33}, 0, 0},
		{Rect{3, 50, 90, 21}, 0, 0},
		{Rect{17, 9, 40, 33}, 10, 8},
		{Rect{61, 40, 32, 31}, 20, 16},
	} {
		var full, part Image
		if _, err := DecodeScaled(jpg, &full, DecodeOptions{MinW: tc.minW, MinH: tc.minH}); err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeScaled(jpg, &part, DecodeOptions{MinW: tc.minW, MinH: tc.minH, Window: tc.win}); err != nil {
			t.Fatal(err)
		}
		if part.W != full.W || part.H != full.H {
			t.Fatalf("window %+v: %dx%d, want %dx%d", tc.win, part.W, part.H, full.W, full.H)
		}
		r := ReducedRect(tc.win, 93, 71, full.W, full.H)
		if !r.In(full.W, full.H) {
			t.Fatalf("window %+v maps to %+v, outside the %dx%d image", tc.win, r, full.W, full.H)
		}
		for y := r.Y; y < r.Y+r.H; y++ {
			a, b := 3*(y*full.W+r.X), 3*(y*full.W+r.X+r.W)
			if !bytes.Equal(part.Pix[a:b], full.Pix[a:b]) {
				t.Errorf("window %+v (%+v at %dx%d): row %d differs from the whole decode", tc.win, r, full.W, full.H, y)
				break
			}
		}
	}
}

// readPillowPair returns testdata/pillow420.jpg and Pillow's decode of it, testdata/pillow420.png (see
// testdata/make_pillow_pair.py).
func readPillowPair(t *testing.T) (jpg, pngData []byte) {
	t.Helper()
	jpg, err := os.ReadFile(filepath.Join("testdata", "pillow420.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	pngData, err = os.ReadFile(filepath.Join("testdata", "pillow420.png"))
	if err != nil {
		t.Fatal(err)
	}
	return jpg, pngData
}

// TestDecodeEqualsPillow checks that Decode gives the pixels Pillow gives, and so does evaluation's
// preprocessing: the JPEG and Pillow's decode of it saved as PNG come out of EvalCenter identical. The
// fast decode, which training uses, does not: it shows what the test would catch.
func TestDecodeEqualsPillow(t *testing.T) {
	jpg, pngData := readPillowPair(t)
	var d Decoder
	var got, want, fast Image
	if _, err := d.Decode(jpg, &got); err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(pngData, &want); err != nil {
		t.Fatal(err)
	}
	if got.W != want.W || got.H != want.H || !bytes.Equal(got.Pix, want.Pix) {
		t.Fatalf("the %dx%d decode differs from Pillow's %dx%d", got.W, got.H, want.W, want.H)
	}
	eval := func(img *Image) []float32 {
		out := make([]float32, 3*32*32)
		if err := EvalCenter(out, img, 40, 32, ImageNetMean, ImageNetStd, &Scratch{}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	a, b := eval(&got), eval(&want)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("EvalCenter value %d: %v from the JPEG, %v from Pillow's pixels", i, a[i], b[i])
		}
	}
	if _, err := d.DecodeScaled(jpg, &fast, DecodeOptions{}); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(fast.Pix, want.Pix) {
		t.Error("the fast decode equals Pillow's too: the test image no longer tells the two apart")
	}
}

func TestDecodeExactRefusesHints(t *testing.T) {
	jpg := encodeJPEG(t, smoothRGBA(40, 30), 90)
	var dst Image
	for _, opt := range []DecodeOptions{{Exact: true, MinW: 10}, {Exact: true, Window: Rect{1, 2, 3, 4}}} {
		_, err := DecodeScaled(jpg, &dst, opt)
		if err == nil || !strings.Contains(err.Error(), "DecodeOptions.Exact decodes the whole image at full size") {
			t.Errorf("%+v: error %v, want one saying Exact decodes the whole image", opt, err)
		}
	}
}
