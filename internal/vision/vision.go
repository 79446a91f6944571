// Package vision holds image decoding (JPEG, PNG) and the geometric and photometric transforms of the
// ImageNet training and evaluation protocols, on 8-bit RGB images.
package vision

// Image is an 8-bit RGB image, rows top to bottom, pixels interleaved R, G, B (HWC). Pix has at least
// W*H*3 bytes; buffers are reused across images, so len(Pix) may exceed that.
type Image struct {
	W, H int
	Pix  []uint8
}

// Resize makes img a w x h image, reusing its buffer when it is large enough. Contents are undefined.
func (img *Image) Resize(w, h int) {
	n := w * h * 3
	if cap(img.Pix) < n {
		img.Pix = make([]uint8, n, n+n/4) // headroom for the next, slightly larger image
	}
	img.Pix = img.Pix[:n]
	img.W, img.H = w, h
}

// Rect is a crop window in pixel coordinates: X, Y of the top-left corner, W x H pixels.
type Rect struct {
	X, Y, W, H int
}
