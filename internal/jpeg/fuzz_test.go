package jpeg

import (
	"image"
	"testing"
)

// FuzzDecode feeds the decoder mutations of small valid JPEGs of every kind it supports. It must return
// (an error or an image of the size the header gives) and never panic, also when asked for a region only
// or for the exact mode. Run it with
//
//	go test -run '^$' -fuzz FuzzDecode -fuzztime 60s ./internal/jpeg/
func FuzzDecode(f *testing.F) {
	f.Add(encodeStd(f, photoImage(17, 9, 1), 75))
	f.Add(encodeStd(f, photoImage(8, 8, 2), 100))
	f.Add(encodeStd(f, grayImage(9, 17, 3), 50))
	f.Add(encodeTest(photoImage(13, 11, 4), testEncoding{factors: [][2]int{{2, 2}, {1, 1}, {1, 1}}, quality: 80, restart: 1}))
	f.Add(encodeTest(photoImage(13, 11, 5), testEncoding{factors: [][2]int{{1, 2}, {1, 1}, {1, 1}}, quality: 90, separate: true, restart: 2}))
	f.Add(encodeTest(photoImage(19, 7, 6), testEncoding{factors: [][2]int{{4, 1}, {1, 1}, {1, 1}}, quality: 60, quant16: true}))
	for _, fx := range pillowFixtures {
		f.Add(mustBase64(f, fx.data))
	}
	var d Decoder
	var dst Dst
	f.Fuzz(func(t *testing.T, data []byte) {
		w, h, _, _, err := Config(data)
		if err == nil && w*h > 1<<22 {
			return // valid but too slow to fuzz: MaxPixels has its own test
		}
		for _, opt := range []Options{{Scale: 1}, {Scale: 8}, {Scale: 1, Region: image.Rect(w/4, h/3, w/2+1, h/2+1)}, {Exact: true}} {
			err := d.Decode(data, &dst, opt)
			if err != nil {
				continue
			}
			s := max(opt.Scale, 1)
			ws, hs := (w+s-1)/s, (h+s-1)/s
			if dst.W != ws || dst.H != hs || len(dst.Pix) != 3*ws*hs {
				t.Fatalf("scale %d: decoded %dx%d (%d bytes); the header says %dx%d", s, dst.W, dst.H, len(dst.Pix), w, h)
			}
		}
	})
}
