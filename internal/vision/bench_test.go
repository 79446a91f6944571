package vision

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"testing"
)

// photoLike is a w x h test picture with what makes JPEG decoding cost what it does on photographs: smooth
// shading, edges and fine texture. At quality 90 and 500x375 it encodes to about 106 KB, close to the
// average ImageNet training JPEG (about 110 KB); entropy decoding time grows with the file size.
func photoLike(w, h int) *image.RGBA {
	rng := rand.New(rand.NewPCG(2015, 12))
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			fx, fy := float64(x)/float64(w), float64(y)/float64(h)
			base := 110 + 60*math.Sin(6*fx+3*fy) + 40*math.Cos(11*fy*fx)
			if (x/37+y/29)%3 == 0 { // blocky edges
				base += 35
			}
			n := rng.NormFloat64() * 30 // sensor noise and texture
			c := func(v float64) uint8 { return uint8(max(0, min(255, v))) }
			m.SetRGBA(x, y, color.RGBA{c(base + n + 30*fx), c(base + 0.8*n), c(base + n - 40*fy), 255})
		}
	}
	return m
}

func benchJPEG(b *testing.B) []byte {
	data := encodeJPEG(b, photoLike(500, 375), 90)
	b.Logf("500x375 quality-90 JPEG: %d bytes", len(data))
	return data
}

func reportImagesPerSecond(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkDecodeJPEG500x375 decodes as evaluation does (exact) and as training's full-size decodes do
// (fast).
func BenchmarkDecodeJPEG500x375(b *testing.B) {
	data := benchJPEG(b)
	for _, c := range []struct {
		name string
		opt  DecodeOptions
	}{{"exact", DecodeOptions{Exact: true}}, {"fast", DecodeOptions{}}} {
		b.Run(c.name, func(b *testing.B) {
			var dst Image
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeScaled(data, &dst, c.opt); err != nil {
					b.Fatal(err)
				}
			}
			reportImagesPerSecond(b)
		})
	}
}

func decodeStdlib(data []byte) (image.Image, error) { return jpeg.Decode(bytes.NewReader(data)) }

// BenchmarkJPEGStdlibOnly is image/jpeg alone, to show what the RGB conversion adds to Decode.
func BenchmarkJPEGStdlibOnly(b *testing.B) {
	data := benchJPEG(b)
	for b.Loop() {
		if _, err := decodeStdlib(data); err != nil {
			b.Fatal(err)
		}
	}
	reportImagesPerSecond(b)
}

func BenchmarkYCbCrToRGB500x375(b *testing.B) {
	img, err := decodeStdlib(benchJPEG(b))
	if err != nil {
		b.Fatal(err)
	}
	var dst Image
	for b.Loop() {
		toRGB(&dst, img)
	}
	reportImagesPerSecond(b)
}

func benchImage(b *testing.B) *Image {
	var src Image
	if _, err := Decode(benchJPEG(b), &src); err != nil {
		b.Fatal(err)
	}
	return &src
}

func BenchmarkTrainRRC224(b *testing.B) {
	src := benchImage(b)
	rng := rand.New(rand.NewPCG(1, 2))
	dst := make([]float32, 3*224*224)
	var s Scratch
	b.ReportAllocs()
	for b.Loop() {
		if err := TrainRRC(dst, src, rng, 224, rng.IntN(2) == 1, ImageNetMean, ImageNetStd, &s); err != nil {
			b.Fatal(err)
		}
	}
	reportImagesPerSecond(b)
}

func BenchmarkTrainScaleAugment224(b *testing.B) {
	src := benchImage(b)
	rng := rand.New(rand.NewPCG(1, 2))
	dst := make([]float32, 3*224*224)
	var s Scratch
	for b.Loop() {
		if err := TrainScaleAugment(dst, src, rng, 256, 480, 224, rng.IntN(2) == 1, ImageNetMean, ImageNetStd, &s); err != nil {
			b.Fatal(err)
		}
		PCALighting(dst, 224, 224, rng, 0.1, ImageNetStd)
	}
	reportImagesPerSecond(b)
}

func BenchmarkEvalCenter224(b *testing.B) {
	src := benchImage(b)
	dst := make([]float32, 3*224*224)
	var s Scratch
	for b.Loop() {
		if err := EvalCenter(dst, src, 256, 224, ImageNetMean, ImageNetStd, &s); err != nil {
			b.Fatal(err)
		}
	}
	reportImagesPerSecond(b)
}

// BenchmarkDecodeTrainRRC224 is the whole per-image training pipeline of a loader worker.
func BenchmarkDecodeTrainRRC224(b *testing.B) {
	data := benchJPEG(b)
	rng := rand.New(rand.NewPCG(1, 2))
	dst := make([]float32, 3*224*224)
	var img Image
	var s Scratch
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeScaled(data, &img, DecodeOptions{}); err != nil {
			b.Fatal(err)
		}
		if err := TrainRRC(dst, &img, rng, 224, rng.IntN(2) == 1, ImageNetMean, ImageNetStd, &s); err != nil {
			b.Fatal(err)
		}
	}
	reportImagesPerSecond(b)
}

// BenchmarkResizeWindow is the resampling of an average random-resized-crop window (about half the image
// area) to 224 x 224, fixed so that runs compare.
func BenchmarkResizeWindow365x275To224(b *testing.B) {
	src := benchImage(b)
	var z Resizer
	var dst Image
	for b.Loop() {
		z.ResizeWindow(&dst, src, Rect{60, 50, 365, 275}, 224, 224)
	}
	reportImagesPerSecond(b)
}
