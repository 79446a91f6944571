package jpeg

import (
	"errors"
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// Differential bounds against image/jpeg decoded and converted with the JFIF equations in floating
// point. Both decoders' inverse DCTs are accurate integer ones, so a sample differs by at most 1 (grey
// images never differ by more). In colour a Cb difference of 1 moves B by 1.772 and a Cr difference of 1
// moves R by 1.402, on top of Y's 1 and the rounding of the conversion, hence 3.
const (
	maxDiffGray  = 1
	maxDiffColor = 3
	maxMeanDiff  = 0.1
)

func TestDecodeMatchesImageJPEG(t *testing.T) {
	sizes := [][2]int{{1, 1}, {2, 3}, {8, 8}, {16, 16}, {17, 9}, {9, 17}, {33, 31}, {64, 48}, {127, 65}}
	var d Decoder
	var dst Dst
	for _, sz := range sizes {
		for _, q := range []int{50, 75, 90, 100} {
			seed := uint64(sz[0]*1000 + sz[1] + q)
			for _, gray := range []bool{false, true} {
				var data []byte
				if gray {
					data = encodeStd(t, grayImage(sz[0], sz[1], seed), q)
				} else {
					data = encodeStd(t, photoImage(sz[0], sz[1], seed), q)
				}
				name := fmt.Sprintf("%dx%d q%d gray=%v", sz[0], sz[1], q, gray)
				if err := d.Decode(data, &dst, Options{}); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				tol := maxDiffColor
				if gray {
					tol = maxDiffGray
				}
				compareExact(t, name, &dst, referenceRGB(t, data), tol, maxMeanDiff)
			}
		}
	}
}

func TestDecodeLargeImage(t *testing.T) {
	var dst Dst
	for _, q := range []int{75, 95} {
		data := encodeStd(t, photoImage(500, 375, uint64(q)), q)
		if err := Decode(data, &dst, Options{}); err != nil {
			t.Fatal(err)
		}
		compareExact(t, fmt.Sprintf("500x375 q%d", q), &dst, referenceRGB(t, data), maxDiffColor, maxMeanDiff)
	}
}

// restartTwins maps each Pillow fixture with restart markers to the same image coded without them: the
// quantised coefficients are the same, so the two must decode to identical pixels.
var restartTwins = map[string]string{
	"fixture420Restart":             "fixture420",
	"fixture444Restart":             "fixture444q95",
	"fixtureProgressive422Restart":  "fixtureProgressive422",
	"fixtureProgressiveGrayRestart": "fixtureProgressiveGrayQ60",
}

func pillowFixture(t *testing.T, name string) []byte {
	t.Helper()
	for _, f := range pillowFixtures {
		if f.name == name {
			return mustBase64(t, f.data)
		}
	}
	t.Fatalf("no fixture %s", name)
	return nil
}

func TestDecodePillowFixtures(t *testing.T) {
	var d Decoder
	var dst, twin Dst
	for _, f := range pillowFixtures {
		data := mustBase64(t, f.data)
		if !stdlibDecodes(data) {
			continue
		}
		err := d.Decode(data, &dst, Options{})
		if err != nil {
			t.Errorf("%s: %v", f.name, err)
			continue
		}
		if tw, ok := restartTwins[f.name]; ok {
			// image/jpeg rejects fixtureProgressive422Restart ("missing 0xff00 sequence"); the twin
			// without restarts is compared with it instead.
			if err := d.Decode(pillowFixture(t, tw), &twin, Options{}); err != nil {
				t.Fatalf("%s: %v", tw, err)
			}
			compareExact(t, f.name+" against "+tw, &dst, &twin, 0, 0)
			continue
		}
		tol := maxDiffColor
		if strings.Contains(f.name, "Gray") || f.name == "fixtureAdobeRGB" {
			tol = maxDiffGray // one plane per output channel: no conversion to amplify differences
		}
		compareExact(t, f.name, &dst, referenceRGB(t, data), tol, maxMeanDiff)
		if strings.HasPrefix(f.name, "fixtureCMYK") {
			// The same samples read as YCCK (Adobe transform 2), which both decoders then convert.
			ycck := append([]byte{}, data...)
			ycck[adobeTransformByte] = 2
			if err := d.Decode(ycck, &dst, Options{}); err != nil {
				t.Fatalf("%s as YCCK: %v", f.name, err)
			}
			// image/jpeg's YCbCr conversion rounds differently from ours by 1 here and there, and the
			// product with K keeps that: a larger mean difference than one conversion alone.
			compareExact(t, f.name+" as YCCK", &dst, referenceRGB(t, ycck), tol, 0.25)
		}
	}
}

// adobeTransformByte is where the CMYK fixtures, which start with an Adobe segment, keep its colour
// transform: after SOI, the marker, the length, "Adobe", the version and two flag words.
const adobeTransformByte = 2 + 2 + 2 + 5 + 6

// TestDecodeLayouts covers sampling factors, non-interleaved scans and restart intervals through the
// test encoder.
func TestDecodeLayouts(t *testing.T) {
	cases := []struct {
		name string
		enc  testEncoding
	}{
		{"4:4:0", testEncoding{factors: [][2]int{{1, 2}, {1, 1}, {1, 1}}}},
		{"4:1:1", testEncoding{factors: [][2]int{{4, 1}, {1, 1}, {1, 1}}}},
		{"4:1:0", testEncoding{factors: [][2]int{{4, 2}, {1, 1}, {1, 1}}}},
		{"4:2:2 as 2x2/1x2", testEncoding{factors: [][2]int{{2, 2}, {1, 2}, {1, 2}}}},
		{"4:4:4 as 2x1 everywhere", testEncoding{factors: [][2]int{{2, 1}, {2, 1}, {2, 1}}}},
		{"4:2:0 restart 1", testEncoding{factors: [][2]int{{2, 2}, {1, 1}, {1, 1}}, restart: 1}},
		{"4:2:0 restart 5", testEncoding{factors: [][2]int{{2, 2}, {1, 1}, {1, 1}}, restart: 5}},
		{"4:2:0 one scan per component", testEncoding{factors: [][2]int{{2, 2}, {1, 1}, {1, 1}}, separate: true}},
		{"4:2:2 one scan per component, restart 3", testEncoding{factors: [][2]int{{2, 1}, {1, 1}, {1, 1}}, separate: true, restart: 3}},
		{"4:4:0 one scan per component, restart 2", testEncoding{factors: [][2]int{{1, 2}, {1, 1}, {1, 1}}, separate: true, restart: 2}},
		{"grey declaring 2x2", testEncoding{factors: [][2]int{{2, 2}}}},
		{"grey restart 7", testEncoding{factors: [][2]int{{1, 1}}, restart: 7}},
		{"4:2:0 16-bit quantisation tables", testEncoding{factors: [][2]int{{2, 2}, {1, 1}, {1, 1}}, quant16: true}},
	}
	var d Decoder
	var dst, twin Dst
	for _, c := range cases {
		for _, sz := range [][2]int{{45, 37}, {8, 8}, {3, 50}} {
			c.enc.quality = 85
			img := photoImage(sz[0], sz[1], 3)
			data := encodeTest(img, c.enc)
			name := fmt.Sprintf("%s %dx%d", c.name, sz[0], sz[1])
			if err := d.Decode(data, &dst, Options{}); err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			// image/jpeg counts restart intervals of a non-interleaved scan in MCUs of the interleaved
			// layout instead of blocks (T.81 A.2.2), so with restarts it fails or misreads; compare with
			// the same coefficients coded without restarts instead.
			ref := data
			if c.enc.restart > 0 {
				plain := c.enc
				plain.restart = 0
				ref = encodeTest(img, plain)
				if err := d.Decode(ref, &twin, Options{}); err != nil {
					t.Fatalf("%s without restarts: %v", name, err)
				}
				compareExact(t, name+" against no restarts", &dst, &twin, 0, 0)
			}
			tol := maxDiffColor
			if len(c.enc.factors) == 1 {
				tol = maxDiffGray
			}
			compareExact(t, name, &dst, referenceRGB(t, ref), tol, maxMeanDiff)
		}
	}
}

// TestDecodeScaled checks reduced-size decoding: exact dimensions, and pixels against image/jpeg's planes
// box-filtered at their own resolution, chroma replicated and converted (see referenceScaled). Each
// reduced inverse DCT is the exact box filter of the full one before rounding, so only the rounding of Y,
// Cb and Cr and clamping separate the two, except in the last output rows and columns, where a block's
// DC also averages the padding an encoder adds beyond the image; they are left out.
func TestDecodeScaled(t *testing.T) {
	sub := func(f ...[2]int) testEncoding { return testEncoding{factors: f, quality: 90} }
	inputs := map[string][]byte{
		"std grey 61x47":      encodeStd(t, grayImage(61, 47, 7), 90),
		"std 4:2:0 500x375":   encodeStd(t, photoImage(500, 375, 5), 90),
		"std 4:2:0 61x47":     encodeStd(t, photoImage(61, 47, 6), 75),
		"std 4:2:0 1x1":       encodeStd(t, photoImage(1, 1, 8), 90),
		"std 4:2:0 3x2":       encodeStd(t, photoImage(3, 2, 8), 90),
		"test 4:4:4 120x88":   encodeTest(photoImage(120, 88, 1), sub([2]int{1, 1}, [2]int{1, 1}, [2]int{1, 1})),
		"test 4:4:0 125x93":   encodeTest(photoImage(125, 93, 9), sub([2]int{1, 2}, [2]int{1, 1}, [2]int{1, 1})),
		"test 4:1:1 125x93":   encodeTest(photoImage(125, 93, 9), sub([2]int{4, 1}, [2]int{1, 1}, [2]int{1, 1})),
		"test separate 4:2:0": encodeTest(photoImage(90, 70, 2), testEncoding{factors: [][2]int{{2, 2}, {1, 1}, {1, 1}}, quality: 90, separate: true}),
	}
	for _, f := range pillowFixtures {
		data := mustBase64(t, f.data)
		if !strings.HasPrefix(f.name, "fixtureCMYK") && f.name != "fixtureProgressive422Restart" && stdlibDecodes(data) {
			inputs["pillow "+f.name] = data
		}
	}
	var d Decoder
	var small Dst
	for name, data := range inputs {
		for _, s := range []int{2, 4, 8} {
			if err := d.Decode(data, &small, Options{Scale: s}); err != nil {
				t.Fatalf("%s scale %d: %v", name, s, err)
			}
			want, margin := referenceScaled(t, data, s)
			if small.W != want.W || small.H != want.H {
				t.Errorf("%s scale %d: got %dx%d, want %dx%d", name, s, small.W, small.H, want.W, want.H)
				continue
			}
			mx, mean := interiorDiff(&small, want, margin)
			if mx > 4 || mean > 1 {
				t.Errorf("%s scale %d: max diff %d (allowed 4), mean %.3f (allowed 1) against image/jpeg's planes "+
					"box-filtered", name, s, mx, mean)
			}
		}
	}

	// Against the box filter of the full-size RGB decode, subsampled chroma averaged over twice the
	// area shows where colour changes within a chroma block; on a photograph that stays small.
	data := encodeStd(t, smoothChromaImage(500, 375, 3), 90)
	var full Dst
	if err := d.Decode(data, &full, Options{}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []int{2, 4, 8} {
		if err := d.Decode(data, &small, Options{Scale: s}); err != nil {
			t.Fatal(err)
		}
		mx, mean := interiorDiff(&small, boxDown(&full, s), 2)
		if mean > 3 {
			t.Errorf("500x375 scale %d: mean diff %.3f (max %d) against the box filter of the full decode, want < 3", s, mean, mx)
		}
	}
}

// interiorDiff is diffStats without the last margin rows and columns.
func interiorDiff(a, b *Dst, margin int) (maxDiff int, mean float64) {
	sum, n := 0, 0
	for y := range b.H - margin {
		for i := 3 * y * b.W; i < 3*(y*b.W+b.W-margin); i++ {
			d := int(a.Pix[i]) - int(b.Pix[i])
			maxDiff, sum, n = max(maxDiff, d, -d), sum+max(d, -d), n+1
		}
	}
	return maxDiff, float64(sum) / float64(max(n, 1))
}

func TestConfig(t *testing.T) {
	cases := []struct {
		data        []byte
		w, h, comps int
		progressive bool
	}{
		{encodeStd(t, photoImage(37, 21, 1), 90), 37, 21, 3, false},
		{encodeStd(t, grayImage(5, 300, 1), 90), 5, 300, 1, false},
	}
	for _, f := range pillowFixtures {
		if f.name == "fixtureProgressive420" {
			cases = append(cases, struct {
				data        []byte
				w, h, comps int
				progressive bool
			}{mustBase64(t, f.data), 64, 48, 3, true})
		}
		if f.name == "fixtureCMYK" {
			cases = append(cases, struct {
				data        []byte
				w, h, comps int
				progressive bool
			}{mustBase64(t, f.data), 21, 13, 4, false})
		}
	}
	for _, c := range cases {
		w, h, comps, prog, err := Config(c.data)
		if err != nil || w != c.w || h != c.h || comps != c.comps || prog != c.progressive {
			t.Errorf("Config = %d, %d, %d, %v, %v; want %d, %d, %d, %v", w, h, comps, prog, err, c.w, c.h, c.comps, c.progressive)
		}
	}
	if _, _, _, _, err := Config([]byte("GIF89a")); err == nil {
		t.Error("Config of a GIF header: no error")
	}
}

// TestErrors checks the error text and ErrUnsupported for files this package rejects.
func TestErrors(t *testing.T) {
	base := encodeStd(t, photoImage(40, 30, 2), 90)
	sof := func(data []byte) int { // offset of the SOF0 marker
		for i := 2; i+1 < len(data); i++ {
			if data[i] == 0xFF && data[i+1] == markerSOF0 {
				return i
			}
		}
		t.Fatal("no SOF0")
		return 0
	}
	patch := func(off int, b byte) []byte {
		c := append([]byte{}, base...)
		c[off] = b
		return c
	}
	s := sof(base)
	cases := []struct {
		name        string
		data        []byte
		opt         Options
		unsupported bool
		text        string
	}{
		{"empty", nil, Options{}, false, "not a JPEG"},
		{"PNG", []byte("\x89PNG\r\n\x1a\n"), Options{}, false, "not a JPEG"},
		{"12-bit", patch(s+4, 12), Options{}, true, "12-bit samples"},
		{"arithmetic", patch(s+1, 0xC9), Options{}, true, "SOF9"},
		{"lossless", patch(s+1, 0xC3), Options{}, true, "SOF3"},
		{"zero width", patch(s+8, 0), Options{}, false, "width is 0"},
		{"bad scale", base, Options{Scale: 3}, false, "Options.Scale must be 1, 2, 4 or 8 (got 3)"},
		{"exact at a scale", base, Options{Scale: 2, Exact: true}, false, "Options.Exact decodes at full size; it cannot be combined with Scale 2"},
		{"exact region", base, Options{Region: image.Rect(0, 0, 8, 8), Exact: true}, false, "cannot be combined with Region (0,0)-(8,8) (crop the result instead)"},
		{"truncated scan", base[:len(base)/2], Options{}, false, "ends"},
		{"truncated header", base[:100], Options{}, false, "corrupt or truncated"},
	}
	for _, f := range pillowFixtures {
		if f.name == "fixtureCMYK" {
			cases = append(cases, struct {
				name        string
				data        []byte
				opt         Options
				unsupported bool
				text        string
			}{"CMYK without its Adobe marker", withoutAdobe(mustBase64(t, f.data)), Options{}, true, "4 components without an Adobe marker"})
		}
	}
	var dst Dst
	for _, c := range cases {
		err := Decode(c.data, &dst, c.opt)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if errors.Is(err, ErrUnsupported) != c.unsupported || !strings.Contains(err.Error(), c.text) {
			t.Errorf("%s: error %q (unsupported %v), want one containing %q (unsupported %v)",
				c.name, err, errors.Is(err, ErrUnsupported), c.text, c.unsupported)
		}
	}
}

// withoutAdobe renames the Adobe segment at the start of a CMYK fixture, so that it no longer says what
// its four components are.
func withoutAdobe(data []byte) []byte {
	c := append([]byte{}, data...)
	c[6] = 'X' // "Adobe" -> "Xdobe"
	return c
}

func TestTooLarge(t *testing.T) {
	data := encodeStd(t, photoImage(16, 16, 1), 90)
	for i := 2; i+8 < len(data); i++ {
		if data[i] == 0xFF && data[i+1] == markerSOF0 {
			data[i+5], data[i+6], data[i+7], data[i+8] = 0xFF, 0xFF, 0xFF, 0xFF // 65535 x 65535
		}
	}
	var dst Dst
	err := Decode(data, &dst, Options{})
	if err == nil || !strings.Contains(err.Error(), "more than the 67108864") {
		t.Errorf("65535x65535 image: got %v", err)
	}
	if cap(dst.Pix) > 0 {
		t.Errorf("allocated %d bytes for a rejected image", cap(dst.Pix))
	}
}

// TestTruncatedAndCorrupt cuts and damages valid files everywhere: decoding must never panic, and a file
// missing a good part of its scan data must fail.
func TestTruncatedAndCorrupt(t *testing.T) {
	files := map[string][]byte{
		"baseline":      encodeStd(t, photoImage(33, 17, 4), 80),
		"restart":       encodeTest(photoImage(33, 17, 4), testEncoding{factors: [][2]int{{2, 2}, {1, 1}, {1, 1}}, quality: 80, restart: 2}),
		"progressive":   nil,
		"progressive-r": nil,
	}
	for _, f := range pillowFixtures {
		switch f.name {
		case "fixtureProgressive444":
			files["progressive"] = mustBase64(t, f.data)
		case "fixtureProgressive422Restart":
			files["progressive-r"] = mustBase64(t, f.data)
		}
	}
	var d Decoder
	var dst Dst
	rng := rand.New(rand.NewPCG(1, 2))
	for name, data := range files {
		for n := range len(data) {
			for _, opt := range []Options{{}, {Exact: true}} {
				err := d.Decode(data[:n], &dst, opt)
				if err == nil && n < len(data)*9/10 {
					t.Errorf("%s cut to %d of %d bytes (exact %v): no error", name, n, len(data), opt.Exact)
				}
			}
		}
		for range 300 {
			c := append([]byte{}, data...)
			for range 1 + rng.IntN(4) {
				c[rng.IntN(len(c))] = byte(rng.IntN(256))
			}
			for _, s := range []int{1, 2, 8} {
				_ = d.Decode(c, &dst, Options{Scale: s}) // must return, not panic
			}
			_ = d.Decode(c, &dst, Options{Exact: true})
		}
	}
}

// TestNoAllocations checks that a Decoder reused on images of the same size allocates nothing.
func TestNoAllocations(t *testing.T) {
	inputs := [][]byte{encodeStd(t, photoImage(64, 48, 1), 90)}
	for _, f := range pillowFixtures {
		if f.name == "fixtureProgressive420" {
			inputs = append(inputs, mustBase64(t, f.data))
		}
	}
	var d Decoder
	var dst Dst
	for _, data := range inputs {
		for _, opt := range []Options{{Scale: 1}, {Scale: 2}, {Exact: true}} {
			if err := d.Decode(data, &dst, opt); err != nil {
				t.Fatal(err)
			}
			allocs := testing.AllocsPerRun(20, func() {
				if err := d.Decode(data, &dst, opt); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("%+v: %v allocations per decode, want 0", opt, allocs)
			}
		}
	}
}

func TestIDCTConstants(t *testing.T) {
	c := func(k float64) float64 { return math.Cos(k * math.Pi / 16) }
	for _, k := range []struct {
		got  int64
		want float64
	}{
		{kSqrt2, math.Sqrt2}, {k2C2, 2 * c(2)}, {k2C2mC6, 2 * (c(2) - c(6))}, {k2C2pC6, 2 * (c(2) + c(6))},
		{kC4, c(4)}, {kC6, c(6)}, {kC2mC6, c(2) - c(6)}, {kC2pC6, c(2) + c(6)},
	} {
		if want := int64(math.Round(k.want * (1 << kBits))); k.got != want {
			t.Errorf("constant %d, want %d (%.6f)", k.got, want, k.want)
		}
	}
}

// TestIDCTPoints checks the scaled 8-point transform against the definition.
func TestIDCTPoints(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 1000 {
		var x [8]float64
		var z [8]int64
		for k := range 8 {
			x[k] = float64(rng.IntN(2001) - 1000)
			z[k] = int64(math.Round(x[k] * scaleWeights[0][k] * (1 << qBits)))
		}
		got := [8]int64{}
		got[0], got[1], got[2], got[3], got[4], got[5], got[6], got[7] = idct8Points(z[0], z[1], z[2], z[3], z[4], z[5], z[6], z[7])
		for n := range 8 {
			want := 0.0
			for k := range 8 {
				w := 1.0
				if k == 0 {
					w = 1 / math.Sqrt2
				}
				want += w * x[k] * math.Cos(float64((2*n+1)*k)*math.Pi/16)
			}
			// The 13-bit constants are within 6e-5 of the cosines.
			tol := 0.01
			for _, v := range x {
				tol += math.Abs(v) * 1e-4
			}
			if d := float64(got[n])/(1<<qBits) - want; math.Abs(d) > tol {
				t.Fatalf("x=%v: output %d is %.4f, want %.4f", x, n, float64(got[n])/(1<<qBits), want)
			}
		}
	}
}

// TestIDCTAccuracy checks the full and reduced transforms against a floating-point inverse DCT (and its
// box filter) on random blocks: every sample within 1 of the exact value rounded.
func TestIDCTAccuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var q [64]uint16
	for i := range q {
		q[i] = uint16(1 + rng.IntN(30))
	}
	var tables [4][64]int32
	for i, s := range []int{1, 2, 4, 8} {
		prescale(&tables[i], &q, s)
	}
	for iter := range 600 {
		var coef [64]int16
		nz := 1 + rng.IntN(64)
		if iter%4 == 0 {
			nz = 1
		}
		for i := range nz {
			coef[zigzag[i]] = int16(rng.IntN(121) - 60)
		}
		coef[0] = int16(rng.IntN(121) - 60)
		var deq [64]float64
		for i := range deq {
			deq[i] = float64(coef[i]) * float64(q[i])
		}
		exact := floatIDCT(&deq)
		for i, s := range []int{1, 2, 4, 8} {
			var blk [64]int32
			end := dequantize(&blk, &coef, &tables[i])
			n := 8 / s
			out := make([]uint8, n*n)
			d := Decoder{state: state{bs: n}}
			d.transform(out, n, &blk, end)
			for y := range n {
				for x := range n {
					sum := 0.0
					for yy := y * s; yy < y*s+s; yy++ {
						for xx := x * s; xx < x*s+s; xx++ {
							sum += exact[yy*8+xx]
						}
					}
					want := math.Round(max(0, min(255, sum/float64(s*s))))
					if got := float64(out[y*n+x]); math.Abs(got-want) > 1 {
						t.Fatalf("scale %d, block %v: sample (%d,%d) is %v, want %v", s, coef, x, y, got, want)
					}
				}
			}
		}
	}
}

// TestDstReuse checks that a large Dst is reused, not reallocated, for a smaller image.
func TestDstReuse(t *testing.T) {
	var dst Dst
	if err := Decode(encodeStd(t, photoImage(64, 64, 1), 90), &dst, Options{}); err != nil {
		t.Fatal(err)
	}
	p := &dst.Pix[0]
	if err := Decode(encodeStd(t, grayImage(10, 7, 1), 90), &dst, Options{}); err != nil {
		t.Fatal(err)
	}
	if dst.W != 10 || dst.H != 7 || len(dst.Pix) != 210 || &dst.Pix[0] != p {
		t.Errorf("got %dx%d, %d bytes, reallocated %v", dst.W, dst.H, len(dst.Pix), &dst.Pix[0] != p)
	}
}

// TestScanBudget builds a progressive file of 200 DC refinement scans, each a couple of bytes that make
// the decoder visit every block, and checks that the decoder gives up.
func TestScanBudget(t *testing.T) {
	data := pillowFixture(t, "fixtureProgressiveGray")
	sos := -1
	for i := 2; i+1 < len(data); i++ {
		if data[i] == 0xFF && data[i+1] == markerSOS {
			sos = i
			break
		}
	}
	id := data[sos+5] // the component of the first scan, the only one
	file := append([]byte{}, data[:sos]...)
	for range 200 {
		file = append(file, 0xFF, markerSOS, 0, 8, 1, id, 0, 0, 0, 0x10) // Ss=0 Se=0 Ah=1 Al=0
		file = append(file, 0x55, 0x55)                                  // one bit per block (5x3 blocks)
	}
	file = append(file, 0xFF, markerEOI)
	var dst Dst
	err := Decode(file, &dst, Options{})
	if err == nil || !strings.Contains(err.Error(), "more than 100 times the blocks") {
		t.Errorf("200 scans over a 33x17 image: got %v", err)
	}
	// The fixture's own scans and 20 more that refine nothing make a valid, if odd, file.
	var want Dst
	if err := Decode(data, &want, Options{}); err != nil {
		t.Fatal(err)
	}
	file = append([]byte{}, data[:len(data)-2]...)
	for range 20 {
		file = append(file, 0xFF, markerSOS, 0, 8, 1, id, 0, 0, 0, 0x10, 0, 0)
	}
	file = append(file, 0xFF, markerEOI)
	if err := Decode(file, &dst, Options{}); err != nil {
		t.Fatalf("fixture with 20 more scans: %v", err)
	}
	compareExact(t, "fixture with 20 more scans", &dst, &want, 0, 0)
}
