// This file holds the test helpers: photo-like test images, the image/jpeg reference decode converted to
// RGB, and image comparison.

package jpeg

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"image"
	"image/color"
	stdjpeg "image/jpeg"
	"math"
	"math/rand/v2"
	"testing"
)

// photoImage returns a deterministic w x h image that compresses like a photograph: smooth colour
// gradients, a few soft blobs, fine texture and pixel noise. Its fine texture is coloured, which makes
// chroma busier than in most photographs: a harder test for the decoder.
func photoImage(w, h int, seed uint64) *image.RGBA {
	return texturedImage(w, h, seed, false)
}

// smoothChromaImage is photoImage with the fine texture and noise in luma only, as in most photographs;
// the scaled-decoding tests use it because reduced sizes average chroma at its own resolution.
func smoothChromaImage(w, h int, seed uint64) *image.RGBA {
	return texturedImage(w, h, seed, true)
}

func texturedImage(w, h int, seed uint64, lumaOnly bool) *image.RGBA {
	rng := rand.New(rand.NewPCG(seed, 7))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	type blob struct{ x, y, r, c0, c1, c2 float64 }
	blobs := make([]blob, 6)
	for i := range blobs {
		blobs[i] = blob{rng.Float64() * float64(w), rng.Float64() * float64(h), 10 + rng.Float64()*float64(max(w, h))/3,
			rng.Float64()*200 - 100, rng.Float64()*200 - 100, rng.Float64()*200 - 100}
	}
	fx, fy := 0.05+rng.Float64()*0.3, 0.05+rng.Float64()*0.3
	for y := range h {
		for x := range w {
			u, v := float64(x)/float64(max(w, 1)), float64(y)/float64(max(h, 1))
			r, g, b := 60+150*u, 40+120*v, 180-100*u*v
			for _, bl := range blobs {
				dx, dy := float64(x)-bl.x, float64(y)-bl.y
				f := math.Exp(-(dx*dx + dy*dy) / (2 * bl.r * bl.r))
				r, g, b = r+bl.c0*f, g+bl.c1*f, b+bl.c2*f
			}
			t := 18 * math.Sin(float64(x)*fx+3*math.Sin(float64(y)*fy)) * math.Cos(float64(y)*fx*0.7)
			t += 10 * math.Sin(float64(x)*1.1+float64(y)*0.6) * math.Sin(float64(y)*fy*3)
			n := rng.NormFloat64() * 12
			if lumaOnly {
				img.SetRGBA(x, y, color.RGBA{clampF(r + t + n), clampF(g + t + n), clampF(b + t + n), 255})
				continue
			}
			img.SetRGBA(x, y, color.RGBA{clampF(r + t + n + rng.NormFloat64()*3), clampF(g + t*0.8 + n),
				clampF(b - t*0.5 + n + rng.NormFloat64()*3), 255})
		}
	}
	return img
}

func clampF(v float64) uint8 {
	return uint8(math.Round(max(0, min(255, v))))
}

// grayImage returns a photo-like grey image.
func grayImage(w, h int, seed uint64) *image.Gray {
	src := photoImage(w, h, seed)
	g := image.NewGray(src.Rect)
	for i := range w * h {
		p := src.Pix[4*i:]
		g.Pix[i] = uint8((int(p[0])*3 + int(p[1])*5 + int(p[2])*2) / 10)
	}
	return g
}

func encodeStd(t testing.TB, img image.Image, quality int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := stdjpeg.Encode(&buf, img, &stdjpeg.Options{Quality: quality}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func mustBase64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// stdlibDecodes reports whether image/jpeg decodes data; it refuses the mixed sampling layouts of some
// fixtures, which the fast path is then not compared on.
func stdlibDecodes(data []byte) bool {
	_, err := stdjpeg.Decode(bytes.NewReader(data))
	var unsupported stdjpeg.UnsupportedError
	return !errors.As(err, &unsupported)
}

// referenceRGB decodes data with image/jpeg and converts the result to RGB with the JFIF equations in
// floating point, replicating chroma samples as image.YCbCr.At does.
func referenceRGB(t testing.TB, data []byte) *Dst {
	t.Helper()
	img, err := stdjpeg.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("image/jpeg: %v", err)
	}
	b := img.Bounds()
	dst := &Dst{W: b.Dx(), H: b.Dy(), Pix: make([]uint8, 3*b.Dx()*b.Dy())}
	for y := range dst.H {
		for x := range dst.W {
			o := dst.Pix[3*(y*dst.W+x):]
			switch m := img.(type) {
			case *image.Gray:
				v := m.GrayAt(x, y).Y
				o[0], o[1], o[2] = v, v, v
			case *image.YCbCr:
				c := m.YCbCrAt(x, y)
				yy, cb, cr := float64(c.Y), float64(c.Cb)-128, float64(c.Cr)-128
				o[0] = clampF(yy + 1.402*cr)
				o[1] = clampF(yy - 0.344136*cb - 0.714136*cr)
				o[2] = clampF(yy + 1.772*cb)
			default:
				r, g, bb, _ := img.At(x, y).RGBA()
				o[0], o[1], o[2] = uint8(r>>8), uint8(g>>8), uint8(bb>>8)
			}
		}
	}
	return dst
}

// diffStats returns the largest and the mean absolute difference between two images of the same size.
func diffStats(a, b *Dst) (maxDiff int, mean float64) {
	sum := 0
	for i := range a.Pix {
		d := int(a.Pix[i]) - int(b.Pix[i])
		d = max(d, -d)
		sum += d
		maxDiff = max(maxDiff, d)
	}
	return maxDiff, float64(sum) / float64(max(len(a.Pix), 1))
}

// compareExact checks got against want pixel by pixel within maxAllowed and meanAllowed.
func compareExact(t *testing.T, name string, got, want *Dst, maxAllowed int, meanAllowed float64) {
	t.Helper()
	if got.W != want.W || got.H != want.H || len(got.Pix) != 3*want.W*want.H {
		t.Errorf("%s: got %dx%d (%d bytes), want %dx%d", name, got.W, got.H, len(got.Pix), want.W, want.H)
		return
	}
	mx, mean := diffStats(got, want)
	if mx > maxAllowed || mean > meanAllowed {
		t.Errorf("%s: max diff %d (allowed %d), mean %.4f (allowed %.4f)%s", name, mx, maxAllowed, mean, meanAllowed,
			firstDiff(got, want, maxAllowed))
	}
}

func firstDiff(got, want *Dst, tol int) string {
	for i := range got.Pix {
		d := int(got.Pix[i]) - int(want.Pix[i])
		if d > tol || -d > tol {
			p := i / 3
			return fmt.Sprintf("; first at x=%d y=%d channel %d: got %d want %d", p%got.W, p/got.W, i%3, got.Pix[i], want.Pix[i])
		}
	}
	return ""
}

// boxDown averages s x s pixels of src (fewer at the right and bottom edges), the reference for scaled
// decoding.
func boxDown(src *Dst, s int) *Dst {
	w, h := (src.W+s-1)/s, (src.H+s-1)/s
	dst := &Dst{W: w, H: h, Pix: make([]uint8, 3*w*h)}
	for y := range h {
		for x := range w {
			for c := range 3 {
				sum, n := 0, 0
				for yy := y * s; yy < min(y*s+s, src.H); yy++ {
					for xx := x * s; xx < min(x*s+s, src.W); xx++ {
						sum += int(src.Pix[3*(yy*src.W+xx)+c])
						n++
					}
				}
				dst.Pix[3*(y*w+x)+c] = uint8((sum + n/2) / n)
			}
		}
	}
	return dst
}

// referenceScaled is the reduced-size decode built from image/jpeg's output: each plane box-filtered s x s
// at its own resolution, chroma replicated, converted with the JFIF equations. It also returns how many
// output rows and columns at the bottom and right depend on the last (possibly padded) chroma sample.
func referenceScaled(t testing.TB, data []byte, s int) (*Dst, int) {
	t.Helper()
	img, err := stdjpeg.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("image/jpeg: %v", err)
	}
	b := img.Bounds()
	w, h := (b.Dx()+s-1)/s, (b.Dy()+s-1)/s
	dst := &Dst{W: w, H: h, Pix: make([]uint8, 3*w*h)}
	// box averages the s x s samples of a pw x ph plane at (x, y) of the reduced plane.
	box := func(pix []uint8, stride, pw, ph, x, y int) float64 {
		sum, n := 0, 0
		for yy := y * s; yy < min(y*s+s, ph); yy++ {
			for xx := x * s; xx < min(x*s+s, pw); xx++ {
				sum += int(pix[yy*stride+xx])
				n++
			}
		}
		return math.Round(float64(sum) / float64(max(n, 1)))
	}
	margin := 2
	switch m := img.(type) {
	case *image.Gray:
		for y := range h {
			for x := range w {
				v := uint8(box(m.Pix, m.Stride, b.Dx(), b.Dy(), x, y))
				o := dst.Pix[3*(y*w+x):]
				o[0], o[1], o[2] = v, v, v
			}
		}
	case *image.YCbCr:
		hs, vs := 0, 0
		switch m.SubsampleRatio {
		case image.YCbCrSubsampleRatio422:
			hs = 1
		case image.YCbCrSubsampleRatio420:
			hs, vs = 1, 1
		case image.YCbCrSubsampleRatio440:
			vs = 1
		case image.YCbCrSubsampleRatio411:
			hs = 2
		case image.YCbCrSubsampleRatio410:
			hs, vs = 2, 1
		}
		cw, ch := (b.Dx()+1<<hs-1)>>hs, (b.Dy()+1<<vs-1)>>vs
		margin = 1 + 1<<max(hs, vs)
		for y := range h {
			for x := range w {
				yy := box(m.Y, m.YStride, b.Dx(), b.Dy(), x, y)
				cb := box(m.Cb, m.CStride, cw, ch, x>>hs, y>>vs) - 128
				cr := box(m.Cr, m.CStride, cw, ch, x>>hs, y>>vs) - 128
				o := dst.Pix[3*(y*w+x):]
				o[0] = clampF(yy + 1.402*cr)
				o[1] = clampF(yy - 0.344136*cb - 0.714136*cr)
				o[2] = clampF(yy + 1.772*cb)
			}
		}
	default:
		full := referenceRGB(t, data)
		return boxDown(full, s), margin
	}
	return dst, margin
}

// floatIDCT is the inverse DCT of dequantised coefficients (natural order) by its definition (T.81
// A.3.3) in floating point, level shift included and without rounding or clamping.
func floatIDCT(deq *[64]float64) (out [64]float64) {
	for y := range 8 {
		for x := range 8 {
			sum := 0.0
			for v := range 8 {
				for u := range 8 {
					cu, cv := 1.0, 1.0
					if u == 0 {
						cu = 1 / math.Sqrt2
					}
					if v == 0 {
						cv = 1 / math.Sqrt2
					}
					sum += cu * cv * deq[v*8+u] *
						math.Cos(float64((2*x+1)*u)*math.Pi/16) * math.Cos(float64((2*y+1)*v)*math.Pi/16)
				}
			}
			out[y*8+x] = sum/4 + 128
		}
	}
	return out
}
