// Package jpeg is a fast JPEG decoder written from ITU T.81 for the training data pipeline. It decodes
// baseline, extended-sequential and progressive Huffman-coded JPEGs with 8-bit samples, grey, three-
// component (YCbCr, or RGB when the file says so) or four-component (Adobe CMYK or YCCK), any sampling
// factors whose ratios are 1, 2 or 4, with or without restart intervals, straight into interleaved 8-bit
// RGB. It can also decode at 1/2, 1/4 or 1/8 of
// the size, through reduced inverse DCTs that box-filter each 8x8 block exactly.
//
// It has two ways of reaching full-size pixels. The default, for training, is fast: a scaled inverse DCT
// and chroma replicated as image/jpeg does. Options.Exact instead reproduces libjpeg-turbo's default
// decompression to the bit (its accurate integer inverse DCT and its triangle-filter chroma upsampling),
// so the pixels equal what Pillow, and therefore torchvision's data pipeline, decodes: evaluation and
// prediction use it. The two differ by a few levels on most pixels of a subsampled image, and by up to
// about 20 where colour changes sharply.
//
// What it does not decode (four components without an Adobe marker, 12-bit samples, arithmetic coding,
// lossless and hierarchical JPEGs) returns an error wrapping ErrUnsupported, for the caller to fall back to image/jpeg.
//
// A Decoder keeps its buffers between calls, so decoding a stream of images into the same Dst allocates
// nothing after the first few. Sequential JPEGs with one scan (what cameras and most encoders write) are
// decoded one row of MCUs at a time: Huffman decode, inverse DCT and colour conversion of a row run while
// it is still in cache. Progressive and multi-scan JPEGs need every coefficient first, so they go through a
// coefficient buffer and are converted at the end.
package jpeg

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"sync"
)

// Dst is an 8-bit RGB image that the caller owns and reuses: W x H pixels, 3 bytes per pixel, rows top
// to bottom with no padding (HWC). Decode sets W and H and grows Pix only when it is too small.
type Dst struct {
	W, H int
	Pix  []uint8
}

// Options select how an image is decoded. The zero value decodes at full size.
type Options struct {
	// Scale is 1 (or 0) for the full size, or 2, 4 or 8 to decode at 1/Scale of the width and height,
	// rounded up. Reduced sizes skip most of the inverse DCT and colour conversion; each output pixel is
	// the mean of the Scale x Scale pixels it covers (chroma is averaged before upsampling).
	Scale int

	// Region, when not empty, is the part of the output (in output pixels, at Scale) that the caller
	// needs, as for a random crop. Decode then writes only the pixels of dst inside it (the others keep
	// what they held) and skips the inverse DCT and colour conversion of the blocks outside it. A
	// single-scan sequential file is decoded only down to the region's last row of blocks; the rest of
	// its scan is only checked for the marker that ends it, so damage there goes unnoticed.
	Region image.Rectangle

	// Exact decodes as libjpeg-turbo does by default (what Pillow's Image.open(f).convert("RGB") returns,
	// and so what torchvision's models were trained and evaluated on): its accurate integer inverse DCT,
	// and chroma interpolated by its triangle filter ("fancy upsampling") instead of replicated. The
	// pixels are libjpeg's to the bit, at a cost in speed (see BenchmarkDecode). It decodes the whole image
	// at full size: Scale must be 0 or 1 and Region empty.
	Exact bool
}

// MaxPixels bounds width x height. A corrupt header can claim 65535 x 65535 pixels, and the output (and, for
// progressive files, the coefficient buffer) is allocated before any pixel data is read.
const MaxPixels = 1 << 26

// maxScans and maxScanPasses bound the work of one image: every scan walks all blocks of its components
// however few bytes it has (one EOB run can cover thousands of blocks), so a hostile file of many tiny
// scans could otherwise keep the decoder busy for minutes. The blocks visited by all scans together may
// be at most maxScanPasses times the blocks of the image; libjpeg's progressive files visit about 5 times.
const (
	maxScans      = 1000
	maxScanPasses = 100
)

// ErrUnsupported is wrapped by the errors for valid JPEGs this package does not decode: 4 components
// without an Adobe marker, 12-bit samples, arithmetic coding, lossless and hierarchical modes, unusual sampling
// factors. Decode them with image/jpeg instead.
var ErrUnsupported = errors.New("jpeg: unsupported JPEG variant (decode it with image/jpeg instead)")

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUnsupported}, args...)...)
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("jpeg: corrupt or truncated data: "+format, args...)
}

// Decode decodes data into dst with a Decoder from a pool; see Decoder.Decode.
func Decode(data []byte, dst *Dst, opt Options) error {
	d := decoderPool.Get().(*Decoder)
	err := d.Decode(data, dst, opt)
	decoderPool.Put(d)
	return err
}

var decoderPool = sync.Pool{New: func() any { return new(Decoder) }}

// Config reads the header of data up to the frame header and returns the image size, the number of
// components and whether the file is progressive. It does not check that Decode supports the file.
func Config(data []byte) (w, h, components int, progressive bool, err error) {
	d := decoderPool.Get().(*Decoder)
	defer decoderPool.Put(d)
	d.reset(data, 1)
	err = d.run(nil, true)
	d.release()
	if err != nil {
		return 0, 0, 0, false, err
	}
	return d.width, d.height, d.ncomp, d.progressive, nil
}

// colorModel is how the components map to RGB.
type colorModel uint8

const (
	colorGray colorModel = iota
	colorYCbCr
	colorRGB
	colorCMYK // Adobe CMYK, stored inverted as Adobe applications write it
	colorYCCK // Adobe YCCK: inverted CMY coded as YCbCr, and inverted K
)

// component is one image component: its frame parameters, its geometry in blocks and in the row planes,
// and the state of the scan being decoded.
type component struct {
	id     uint8
	h, v   int   // sampling factors
	tq     uint8 // quantisation table
	sx, sy uint  // log2 of hmax/h and vmax/v: how much smaller this component is than the image

	bw, bh   int // blocks per row and column in the MCU-padded grid (mcusX*h by mcusY*v)
	cbw, cbh int // blocks that a non-interleaved scan of this component covers
	coefOff  int // first coefficient of this component in Decoder.coefs

	cw, ch int // samples per row and column that lie inside the image (the rest pads the last blocks)

	planeOff    int // first sample of this component in Decoder.planes
	planeStride int // samples per plane row: bw blocks of bs samples
	slotSize    int // samples of one MCU row of the plane; the exact mode keeps exactSlots of them
	bx0, bx1    int // block columns [bx0, bx1) that the output region needs
	up          upsampling

	// scan state
	pred   int32 // DC predictor
	dc, ac *huffTable
}

// scan is the header of one scan.
type scan struct {
	n      int    // components in the scan
	comp   [4]int // indexes into Decoder.comps, in scan order
	ss, se int    // spectral selection
	ah, al uint   // successive approximation
}

// Decoder decodes JPEGs and keeps its buffers for the next call. The zero value is ready to use. A Decoder
// is not safe for concurrent use; keep one per goroutine.
type Decoder struct {
	state
	dcTables, acTables [4]huffTable // large: kept between images, marked undefined by reset
	coefs              []int16      // every block of every component, natural order (progressive, multi-scan)
	nonZero            []uint64     // per block of coefs: a bit per non-zero AC coefficient, zig-zag order
	planes             []uint8      // one row of MCUs (exact mode: exactSlots rows), per component, as samples
	upRows             []uint8      // exact mode: one upsampled output row per component
}

// state is everything about one image that reset clears in a single assignment.
type state struct {
	data []byte
	pos  int // next marker or segment byte while reading headers

	// frame
	width, height int
	ncomp         int
	frameSeg      []byte // the frame header, for checkFrame
	comps         [4]component
	progressive   bool
	frameSeen     bool
	hmax, vmax    int
	mcusX, mcusY  int
	color         colorModel
	jfif          bool
	adobe         bool
	adobeXform    uint8
	restart       int  // restart interval in MCUs, 0 for none
	scans         int  // scans seen so far
	blockVisits   int  // blocks visited by the scans so far, against maxScanPasses
	coefMode      bool // scans go to the coefficient buffer, converted at EOI

	quant        [4][64]uint16 // natural order
	quantDefined [4]bool

	// output geometry
	scale      int
	exact      bool
	bs         int // samples per block side at this scale: 8, 4, 2 or 1
	outW, outH int
	region     image.Rectangle // the output pixels to write: Options.Region clipped, or the whole output
	myFirst    int             // first and last MCU rows that the region touches
	myLast     int
	qs         [4][64]int32 // quant tables prescaled for the inverse DCT at this scale

	br     bitReader
	eobrun int
	blk    [64]int32 // the block being decoded or transformed; zero between blocks in the streaming path
}

// Decode decodes the JPEG in data into dst as 8-bit RGB at the scale that opt asks for. Grey images are
// expanded to RGB. Corrupt or truncated data returns an error (never a panic); on error dst holds
// unspecified pixels. Files this package does not decode return an error wrapping ErrUnsupported.
func (d *Decoder) Decode(data []byte, dst *Dst, opt Options) error {
	scale := opt.Scale
	switch scale {
	case 0:
		scale = 1
	case 1, 2, 4, 8:
	default:
		return fmt.Errorf("jpeg: Options.Scale must be 1, 2, 4 or 8 (got %d)", opt.Scale)
	}
	switch {
	case opt.Exact && scale != 1:
		return fmt.Errorf("jpeg: Options.Exact decodes at full size; it cannot be combined with Scale %d", opt.Scale)
	case opt.Exact && !opt.Region.Empty():
		return fmt.Errorf("jpeg: Options.Exact decodes the whole image; it cannot be combined with Region %v (crop the result instead)",
			opt.Region)
	}
	if dst == nil {
		return errors.New("jpeg: Decode needs a non-nil *Dst to decode into")
	}
	d.reset(data, scale)
	d.region = opt.Region
	d.exact = opt.Exact
	err := d.run(dst, false)
	d.release()
	return err
}

// release drops the references to the caller's data, which a pooled Decoder would otherwise keep alive.
func (d *Decoder) release() {
	d.data, d.frameSeg, d.br.data = nil, nil, nil
}

func (d *Decoder) reset(data []byte, scale int) {
	d.state = state{data: data, scale: scale, bs: 8 / scale}
	for i := range d.dcTables {
		d.dcTables[i].defined = false
		d.acTables[i].defined = false
	}
}

// setup runs at the first scan: it checks the frame, works out the geometry at the chosen scale and sizes
// the output and the buffers.
func (d *Decoder) setup(dst *Dst, needCoefs bool) error {
	if int64(d.width)*int64(d.height) > MaxPixels {
		return fmt.Errorf("jpeg: image is %dx%d pixels, more than the %d this decoder accepts", d.width, d.height, MaxPixels)
	}
	s := d.scale
	d.outW, d.outH = (d.width+s-1)/s, (d.height+s-1)/s
	n := d.outW * d.outH * 3
	if cap(dst.Pix) < n {
		dst.Pix = make([]uint8, n, headroom(n))
	}
	dst.W, dst.H, dst.Pix = d.outW, d.outH, dst.Pix[:n]
	if err := d.setupRegion(); err != nil {
		return err
	}

	slots := 1
	if d.exact {
		slots = exactSlots
		d.chooseUpsampling()
		n := 4 * d.mcusX * d.hmax * 8
		if cap(d.upRows) < n {
			d.upRows = make([]uint8, n, headroom(n))
		}
		d.upRows = d.upRows[:n]
	}
	planeSize, coefSize := 0, 0
	for i := range d.ncomp {
		c := &d.comps[i]
		c.planeOff = planeSize
		c.planeStride = c.bw * d.bs
		c.slotSize = c.planeStride * c.v * d.bs
		planeSize += c.slotSize * slots
		c.coefOff = coefSize
		coefSize += c.bw * c.bh * 64
	}
	if cap(d.planes) < planeSize {
		d.planes = make([]uint8, planeSize, headroom(planeSize))
	}
	d.planes = d.planes[:planeSize]
	if needCoefs {
		if cap(d.coefs) < coefSize {
			d.coefs = make([]int16, coefSize, headroom(coefSize))
			d.nonZero = make([]uint64, coefSize/64, cap(d.coefs)/64)
		}
		d.coefs, d.nonZero = d.coefs[:coefSize], d.nonZero[:coefSize/64]
		clear(d.coefs)
		clear(d.nonZero)
	}
	return nil
}

// headroom is the capacity to allocate for n elements: a quarter more, so that a stream of images of
// slightly different sizes settles on one buffer instead of reallocating at each larger one.
func headroom(n int) int { return n + n/4 }

// setupRegion clips the requested region to the output and works out which MCU rows and, per component,
// which block columns it needs. The region's left edge moves down to a multiple of the widest chroma
// subsampling, so that each row converter starts on a whole chroma sample.
func (d *Decoder) setupRegion() error {
	out := image.Rect(0, 0, d.outW, d.outH)
	r := out
	if !d.region.Empty() {
		r = d.region.Intersect(out)
		if r.Empty() {
			return fmt.Errorf("jpeg: Options.Region %v is outside the %dx%d output", d.region, d.outW, d.outH)
		}
	}
	var sx uint
	for i := range d.ncomp {
		sx = max(sx, d.comps[i].sx)
	}
	r.Min.X &^= 1<<sx - 1
	d.region = r
	rows := d.vmax * d.bs
	d.myFirst, d.myLast = r.Min.Y/rows, (r.Max.Y-1)/rows
	for i := range d.ncomp {
		c := &d.comps[i]
		c.bx0 = (r.Min.X >> c.sx) / d.bs
		c.bx1 = ((r.Max.X-1)>>c.sx)/d.bs + 1
	}
	return nil
}

// scanEnds reports whether the entropy-coded data from pos on is followed by a marker other than a
// restart marker: the check that replaces decoding the rest of a scan below the region.
func scanEnds(data []byte, pos int) bool {
	for pos < len(data) {
		i := bytes.IndexByte(data[pos:], 0xFF)
		if i < 0 || pos+i+1 >= len(data) {
			return false
		}
		pos += i + 1
		if m := data[pos]; m != 0 && m != 0xFF && (m < markerRST0 || m > markerRST7) {
			return true
		}
	}
	return false
}

// prescaleQuant fills d.qs for the components' tables; the tables must be defined by now.
func (d *Decoder) prescaleQuant() error {
	for i := range d.ncomp {
		t := d.comps[i].tq
		if !d.quantDefined[t] {
			return corrupt("component %d uses quantisation table %d, which is not defined", i, t)
		}
		if d.exact {
			// The accurate transform takes the coefficients times the table as they are.
			for k, q := range d.quant[t] {
				d.qs[t][k] = int32(q)
			}
			continue
		}
		prescale(&d.qs[t], &d.quant[t], d.scale)
	}
	return nil
}

// blockOffset is where block column bx, block row v of MCU row my of component c starts in d.planes.
func (d *Decoder) blockOffset(c *component, my, v, bx int) int {
	slot := 0
	if d.exact {
		slot = my % exactSlots
	}
	return c.planeOff + slot*c.slotSize + v*d.bs*c.planeStride + bx*d.bs
}

// emit converts MCU row my, just decoded into the planes, to dst. The exact mode emits the row above
// instead, whose neighbours are now decoded, and the last row once last is set.
func (d *Decoder) emit(my int, last bool, dst *Dst) {
	if !d.exact {
		d.emitRow(my, dst)
		return
	}
	if my > 0 {
		d.emitRowExact(my-1, dst)
	}
	if last {
		d.emitRowExact(my, dst)
	}
}
