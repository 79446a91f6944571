// This file holds image decoding: format sniffing from magic bytes, JPEG through internal/jpeg (with the
// standard library for the variants it leaves out), PNG through the standard library, and conversion of
// every decoded colour model into the package's 8-bit RGB Image.

package vision

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"sync"

	fastjpeg "resnet/internal/jpeg"
)

// Format is an encoded image format, recognised from the first bytes of the data, never from a file name:
// ImageNet has PNGs (and CMYK JPEGs) named .JPEG.
type Format uint8

const (
	FormatUnknown Format = iota
	FormatJPEG
	FormatPNG
)

func (f Format) String() string {
	switch f {
	case FormatJPEG:
		return "JPEG"
	case FormatPNG:
		return "PNG"
	}
	return "unknown"
}

// MaxPixels bounds the width x height that Decode accepts. A corrupt or hostile header can claim up to
// 65535 x 65535 pixels, and the standard decoders allocate the whole image before reading any pixel data.
// 1<<26 is 67 million pixels (192 MiB as RGB), far more than any training photograph needs.
const MaxPixels = 1 << 26

var (
	jpegMagic = []byte{0xFF, 0xD8, 0xFF}
	pngMagic  = []byte{0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'}
)

// Sniff returns the format of data from its magic bytes, or an error that shows the first bytes.
func Sniff(data []byte) (Format, error) {
	switch {
	case len(data) == 0:
		return FormatUnknown, errors.New("vision: empty image data (0 bytes); the file is empty or was not read")
	case bytes.HasPrefix(data, jpegMagic):
		return FormatJPEG, nil
	case bytes.HasPrefix(data, pngMagic):
		return FormatPNG, nil
	}
	return FormatUnknown, fmt.Errorf("vision: unknown image format (first bytes % x); only JPEG and PNG are supported",
		data[:min(4, len(data))])
}

// DecodeConfig reads only the header of data: the image size and format. It costs microseconds, so a loader
// can plan a crop (or a reduced-scale decode) before decoding.
func DecodeConfig(data []byte) (w, h int, f Format, err error) {
	f, err = Sniff(data)
	if err != nil {
		return 0, 0, f, err
	}
	var cfg image.Config
	switch f {
	case FormatJPEG:
		// The project's decoder reads the header without allocating; the standard library's reader covers
		// the variants it leaves out.
		if cfg.Width, cfg.Height, _, _, err = fastjpeg.Config(data); err != nil {
			cfg, err = jpeg.DecodeConfig(bytes.NewReader(data))
		}
	case FormatPNG:
		cfg, err = png.DecodeConfig(bytes.NewReader(data))
	}
	if err != nil {
		return 0, 0, f, fmt.Errorf("vision: corrupt %s header: %w", f, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return 0, 0, f, fmt.Errorf("vision: corrupt %s header: image is %dx%d pixels", f, cfg.Width, cfg.Height)
	}
	return cfg.Width, cfg.Height, f, nil
}

// DecodeOptions are hints for DecodeScaled. The zero value asks for the full-size image, decoded by the
// fast path.
type DecodeOptions struct {
	// Exact decodes JPEGs as libjpeg-turbo does by default, so as Pillow's Image.open(f).convert("RGB")
	// does: the pixels torchvision's models were trained and published on (see jpeg.Options.Exact). It
	// is for evaluation and prediction, and decodes the whole image at full size: MinW, MinH and Window
	// must be zero. Without it, JPEG chroma is replicated instead of interpolated and the inverse DCT
	// rounds differently: a few levels apart on most pixels of a subsampled image, which training's
	// augmentation drowns.
	Exact bool
	// MinW and MinH are the smallest decoded width and height the caller can use. A decoder that supports
	// reduced-scale decoding (JPEG's 1/2, 1/4 and 1/8 IDCT scaling) may return an image downscaled by a power
	// of two as long as it stays at least MinW x MinH; the caller finds the scale from dst.W / full width.
	MinW, MinH int
	// Window, when not empty, is the part of the full-size image the caller will read (a crop). A decoder
	// that can (the project's JPEG decoder) then decodes only the pixels around it: in dst, the pixels
	// outside ReducedRect(Window, ...) are left unspecified.
	Window Rect
}

// ReducedRect maps the window r of a fullW x fullH image onto the same image decoded at w x h, a
// reduction by a power of two with the sizes rounded up, rounding outwards and keeping it inside.
func ReducedRect(r Rect, fullW, fullH, w, h int) Rect {
	if w == fullW && h == fullH {
		return r
	}
	s := 2
	for ceilDiv(fullW, s) != w && s < 8 {
		s *= 2
	}
	x0, y0 := r.X/s, r.Y/s
	x1, y1 := min(ceilDiv(r.X+r.W, s), w), min(ceilDiv(r.Y+r.H, s), h)
	return Rect{X: x0, Y: y0, W: x1 - x0, H: y1 - y0}
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// Decode decodes a JPEG (baseline or progressive) or PNG into dst as 8-bit RGB, reusing dst's buffer, with
// the pixels Pillow gives (JPEGs in the exact mode, see DecodeOptions.Exact). The format comes from the
// magic bytes. Grey, CMYK, YCCK, 16-bit, palette and alpha images are converted to RGB (alpha is dropped,
// as PIL's convert("RGB") does). Corrupt or truncated data returns an error, never panics.
func Decode(data []byte, dst *Image) (Format, error) {
	return DecodeScaled(data, dst, DecodeOptions{Exact: true})
}

// DecodeScaled decodes as opt asks (see DecodeOptions). JPEGs go through the project's own decoder
// (internal/jpeg, about twice as fast as image/jpeg), which decodes at 1/2, 1/4 or 1/8 of the size when the
// hint allows; callers map crop rectangles by dst.W / full width (ReducedRect). Variants it does not handle
// (12-bit, arithmetic coding, CMYK without an Adobe marker) and PNGs go through the standard library, so
// those JPEGs are not decoded exactly even with opt.Exact.
func DecodeScaled(data []byte, dst *Image, opt DecodeOptions) (f Format, err error) {
	d := decoderPool.Get().(*Decoder)
	defer decoderPool.Put(d)
	return d.DecodeScaled(data, dst, opt)
}

var decoderPool = sync.Pool{New: func() any { return new(Decoder) }}

// Decoder keeps the JPEG decoder's buffers (coefficients of progressive files, rows of blocks) from one
// image to the next. A loader worker owns one: the pool behind the package's functions is emptied by
// every garbage collection. The zero value is ready to use; a Decoder must not be used by two goroutines
// at once.
type Decoder struct {
	jpeg fastjpeg.Decoder
}

// Decode is the package's Decode with d's buffers.
func (d *Decoder) Decode(data []byte, dst *Image) (Format, error) {
	return d.DecodeScaled(data, dst, DecodeOptions{Exact: true})
}

// DecodeScaled is the package's DecodeScaled with d's buffers.
func (d *Decoder) DecodeScaled(data []byte, dst *Image, opt DecodeOptions) (f Format, err error) {
	if opt.Exact && (opt.MinW != 0 || opt.MinH != 0 || opt.Window != (Rect{})) {
		return FormatUnknown, fmt.Errorf("vision: DecodeOptions.Exact decodes the whole image at full size; "+
			"it cannot be combined with a size hint (%dx%d) or a window (%+v)", opt.MinW, opt.MinH, opt.Window)
	}
	w, h, f, err := DecodeConfig(data)
	if err != nil {
		return f, err
	}
	if int64(w)*int64(h) > MaxPixels {
		return f, fmt.Errorf("vision: %s is %dx%d pixels, more than the %d this decoder accepts; downscale the file",
			f, w, h, MaxPixels)
	}
	if f == FormatJPEG {
		out := fastjpeg.Dst{Pix: dst.Pix}
		jo := fastjpeg.Options{Scale: jpegScale(w, h, opt), Exact: opt.Exact}
		if win := opt.Window; win.In(w, h) {
			win = ReducedRect(win, w, h, ceilDiv(w, jo.Scale), ceilDiv(h, jo.Scale))
			jo.Region = image.Rect(win.X, win.Y, win.X+win.W, win.Y+win.H)
		}
		err := d.jpeg.Decode(data, &out, jo)
		if err == nil {
			dst.W, dst.H, dst.Pix = out.W, out.H, out.Pix
			return f, nil
		}
		if !errors.Is(err, fastjpeg.ErrUnsupported) {
			return f, fmt.Errorf("vision: corrupt or truncated %s: %w", f, err)
		}
	}
	// The standard decoders are fuzzed and return errors on bad input; this guard keeps a decoder bug on one
	// corrupt file from killing a training run.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("vision: %s decoder failed on corrupt data: %v", f, r)
		}
	}()
	var img image.Image
	switch f {
	case FormatJPEG:
		img, err = jpeg.Decode(bytes.NewReader(data))
	case FormatPNG:
		img, err = png.Decode(bytes.NewReader(data))
	}
	if err != nil {
		return f, fmt.Errorf("vision: corrupt or truncated %s: %w", f, err)
	}
	toRGB(dst, img)
	return f, nil
}

// jpegScale is the largest power-of-two reduction (up to 8) that keeps a w x h image at least the hinted
// size; 1 without a hint.
func jpegScale(w, h int, opt DecodeOptions) int {
	if opt.MinW <= 0 && opt.MinH <= 0 {
		return 1
	}
	scale := 1
	for next := 2; next <= 8; next *= 2 {
		if (w+next-1)/next < opt.MinW || (h+next-1)/next < opt.MinH {
			break
		}
		scale = next
	}
	return scale
}

// toRGB converts any decoded image into dst. Each colour model the standard decoders return has its own
// loop over the pixel buffers; only unknown models go through the per-pixel At interface.
func toRGB(dst *Image, src image.Image) {
	b := src.Bounds()
	dst.Resize(b.Dx(), b.Dy())
	switch m := src.(type) {
	case *image.YCbCr:
		if ycbcrToRGB(dst, m) {
			return
		}
	case *image.NYCbCrA:
		if ycbcrToRGB(dst, &m.YCbCr) {
			return
		}
	case *image.Gray:
		grayToRGB(dst, m)
		return
	case *image.Gray16:
		gray16ToRGB(dst, m)
		return
	case *image.CMYK:
		cmykToRGB(dst, m)
		return
	case *image.RGBA:
		rgbaToRGB(dst, m.Pix, m.Stride, true)
		return
	case *image.NRGBA:
		rgbaToRGB(dst, m.Pix, m.Stride, false)
		return
	case *image.RGBA64:
		rgba64ToRGB(dst, m.Pix, m.Stride, true)
		return
	case *image.NRGBA64:
		rgba64ToRGB(dst, m.Pix, m.Stride, false)
		return
	case *image.Paletted:
		palettedToRGB(dst, m)
		return
	}
	genericToRGB(dst, src)
}

// JFIF YCbCr to RGB in 16.16 fixed point:
//
//	R = Y + 1.402 (Cr-128)
//	G = Y - 0.344136 (Cb-128) - 0.714136 (Cr-128)
//	B = Y + 1.772 (Cb-128)
//
// rounded to nearest and clamped to [0, 255].
const (
	yccShift = 16
	yccHalf  = 1 << (yccShift - 1)
	yccCrR   = 91881  // 1.402 * 2^16
	yccCbG   = 22554  // 0.344136 * 2^16
	yccCrG   = 46802  // 0.714136 * 2^16
	yccCbB   = 116130 // 1.772 * 2^16
)

// clamp8 returns v clamped to [0, 255]. The in-range test is almost always true on photographs, so the
// branch predicts well; out of range, ^(v >> 31) is 0 for negative v and all ones (255) for large v.
func clamp8(v int32) uint8 {
	if uint32(v) <= 255 {
		return uint8(v)
	}
	return uint8(^(v >> 31))
}

// ycbcrToRGB handles every subsample ratio by shifting x and y into chroma coordinates. It reports false for
// a ratio or origin it does not know, for the generic path to take over.
func ycbcrToRGB(dst *Image, m *image.YCbCr) bool {
	var hs, vs uint // log2 of the horizontal and vertical chroma subsampling
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio444:
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
	default:
		return false
	}
	r := m.Rect
	if r.Min.X < 0 || r.Min.Y < 0 {
		return false
	}
	w, h := dst.W, dst.H
	// Phase of the first column inside its chroma sample (non-zero only for sub-images).
	phase := r.Min.X & (1<<hs - 1)
	cw := (phase+w-1)>>hs + 1
	for y := range h {
		yRow := m.Y[y*m.YStride : y*m.YStride+w]
		co := ((r.Min.Y+y)>>vs - r.Min.Y>>vs) * m.CStride
		cb := m.Cb[co : co+cw]
		cr := m.Cr[co : co+cw]
		out := dst.Pix[y*w*3 : (y+1)*w*3]
		if hs == 1 && phase == 0 {
			ycbcrRow2(out, yRow, cb, cr)
			continue
		}
		for x, yv := range yRow {
			c := (x + phase) >> hs
			cbv, crv := int32(cb[c])-128, int32(cr[c])-128
			y1 := int32(yv)<<yccShift + yccHalf
			o := out[3*x : 3*x+3 : 3*x+3]
			o[0] = clamp8((y1 + yccCrR*crv) >> yccShift)
			o[1] = clamp8((y1 - yccCbG*cbv - yccCrG*crv) >> yccShift)
			o[2] = clamp8((y1 + yccCbB*cbv) >> yccShift)
		}
	}
	return true
}

// ycbcrRow2 converts a row with 2:1 horizontal chroma subsampling (4:2:0 and 4:2:2, what almost every JPEG
// camera and encoder writes), computing each chroma term once per pixel pair.
func ycbcrRow2(out, yRow, cb, cr []uint8) {
	w := len(yRow)
	out = out[:3*w]
	cb, cr = cb[:(w+1)/2], cr[:(w+1)/2]
	for c := range cb {
		cbv, crv := int32(cb[c])-128, int32(cr[c])-128
		dr, dg, db := yccCrR*crv, -yccCbG*cbv-yccCrG*crv, yccCbB*cbv
		x := 2 * c
		y0 := int32(yRow[x])<<yccShift + yccHalf
		o := out[3*x : 3*x+3 : 3*x+3]
		o[0] = clamp8((y0 + dr) >> yccShift)
		o[1] = clamp8((y0 + dg) >> yccShift)
		o[2] = clamp8((y0 + db) >> yccShift)
		if x+1 == w {
			break
		}
		y1 := int32(yRow[x+1])<<yccShift + yccHalf
		o = out[3*x+3 : 3*x+6 : 3*x+6]
		o[0] = clamp8((y1 + dr) >> yccShift)
		o[1] = clamp8((y1 + dg) >> yccShift)
		o[2] = clamp8((y1 + db) >> yccShift)
	}
}

func grayToRGB(dst *Image, m *image.Gray) {
	w := dst.W
	for y := range dst.H {
		row := m.Pix[y*m.Stride : y*m.Stride+w]
		out := dst.Pix[y*w*3 : (y+1)*w*3]
		for x, v := range row {
			o := out[3*x : 3*x+3 : 3*x+3]
			o[0], o[1], o[2] = v, v, v
		}
	}
}

// 16-bit samples keep their high byte, as Go's colour models and PIL's 16-to-8-bit unpacking do.
func gray16ToRGB(dst *Image, m *image.Gray16) {
	w := dst.W
	for y := range dst.H {
		row := m.Pix[y*m.Stride : y*m.Stride+2*w]
		out := dst.Pix[y*w*3 : (y+1)*w*3]
		for x := range w {
			v := row[2*x]
			o := out[3*x : 3*x+3 : 3*x+3]
			o[0], o[1], o[2] = v, v, v
		}
	}
}

// div255 is round(v / 255) for 0 <= v <= 255*255.
func div255(v uint32) uint8 {
	v += 128
	return uint8((v + v>>8) >> 8)
}

// cmykToRGB uses R = (255-C)(255-K)/255 and likewise for G, B. image/jpeg already undoes the inversion that
// Adobe applications write into CMYK JPEGs (and converts YCCK to CMYK), so its CMYK has 255 = full ink.
func cmykToRGB(dst *Image, m *image.CMYK) {
	w := dst.W
	for y := range dst.H {
		row := m.Pix[y*m.Stride : y*m.Stride+4*w]
		out := dst.Pix[y*w*3 : (y+1)*w*3]
		for x := range w {
			p := row[4*x : 4*x+4 : 4*x+4]
			o := out[3*x : 3*x+3 : 3*x+3]
			k := 255 - uint32(p[3])
			o[0] = div255((255 - uint32(p[0])) * k)
			o[1] = div255((255 - uint32(p[1])) * k)
			o[2] = div255((255 - uint32(p[2])) * k)
		}
	}
}

// rgbaToRGB drops alpha. Premultiplied pixels are first divided by alpha so that a translucent pixel keeps
// its colour, matching the non-premultiplied path (fully transparent premultiplied pixels become black).
func rgbaToRGB(dst *Image, pix []uint8, stride int, premultiplied bool) {
	w := dst.W
	for y := range dst.H {
		row := pix[y*stride : y*stride+4*w]
		out := dst.Pix[y*w*3 : (y+1)*w*3]
		for x := range w {
			p := row[4*x : 4*x+4 : 4*x+4]
			o := out[3*x : 3*x+3 : 3*x+3]
			r, g, b, a := p[0], p[1], p[2], p[3]
			if premultiplied && a != 255 {
				r, g, b = unpremultiply8(r, a), unpremultiply8(g, a), unpremultiply8(b, a)
			}
			o[0], o[1], o[2] = r, g, b
		}
	}
}

func unpremultiply8(c, a uint8) uint8 {
	if a == 0 {
		return 0
	}
	v := (uint32(c)*255 + uint32(a)/2) / uint32(a)
	return uint8(min(v, 255))
}

// rgba64ToRGB is rgbaToRGB for 16-bit big-endian samples; the result keeps the high byte.
func rgba64ToRGB(dst *Image, pix []uint8, stride int, premultiplied bool) {
	w := dst.W
	for y := range dst.H {
		row := pix[y*stride : y*stride+8*w]
		out := dst.Pix[y*w*3 : (y+1)*w*3]
		for x := range w {
			p := row[8*x : 8*x+8 : 8*x+8]
			o := out[3*x : 3*x+3 : 3*x+3]
			if !premultiplied {
				o[0], o[1], o[2] = p[0], p[2], p[4]
				continue
			}
			a := uint32(p[6])<<8 | uint32(p[7])
			for c := range 3 {
				v := uint32(p[2*c])<<8 | uint32(p[2*c+1])
				switch a {
				case 0xFFFF:
				case 0:
					v = 0
				default:
					v = min((v*0xFFFF+a/2)/a, 0xFFFF)
				}
				o[c] = uint8(v >> 8)
			}
		}
	}
}

// palettedToRGB converts the palette once (256 interface calls at most) and then looks pixels up. Indices
// past the end of the palette read black.
func palettedToRGB(dst *Image, m *image.Paletted) {
	var lut [256][3]uint8
	for i, c := range m.Palette {
		if i == len(lut) {
			break
		}
		n := color.NRGBAModel.Convert(c).(color.NRGBA)
		lut[i] = [3]uint8{n.R, n.G, n.B}
	}
	w := dst.W
	for y := range dst.H {
		row := m.Pix[y*m.Stride : y*m.Stride+w]
		out := dst.Pix[y*w*3 : (y+1)*w*3]
		for x, idx := range row {
			c := &lut[idx]
			o := out[3*x : 3*x+3 : 3*x+3]
			o[0], o[1], o[2] = c[0], c[1], c[2]
		}
	}
}

// genericToRGB is the slow path for colour models the standard decoders do not return today.
func genericToRGB(dst *Image, src image.Image) {
	b := src.Bounds()
	i := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.NRGBAModel.Convert(src.At(x, y)).(color.NRGBA)
			dst.Pix[i], dst.Pix[i+1], dst.Pix[i+2] = c.R, c.G, c.B
			i += 3
		}
	}
}
