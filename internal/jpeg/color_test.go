package jpeg

import (
	"bytes"
	"testing"
)

// TestYCCRowHalfExact checks the table-driven 4:2:0 converter against yccPixel, the arithmetic
// definition, for every Y, Cb and Cr value, at even and odd widths.
func TestYCCRowHalfExact(t *testing.T) {
	for _, w := range []int{1, 2, 3, 255, 256} {
		y := make([]uint8, w)
		cb, cr := make([]uint8, (w+1)/2), make([]uint8, (w+1)/2)
		got, want := make([]uint8, 3*w), make([]uint8, 3*w)
		for c := range 256 * 256 {
			if w < 255 && c%97 != 0 {
				continue // the short rows only check the edges
			}
			for i := range y {
				y[i] = uint8(i + c)
			}
			for i := range cb {
				cb[i], cr[i] = uint8(c>>8+i), uint8(c+3*i)
			}
			yccRowHalf(got, y, cb, cr)
			for i := range w {
				yccPixel(want[3*i:], y[i], cb[i/2], cr[i/2])
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("width %d, chroma %d: got %v, want %v", w, c, got[:min(12, len(got))], want[:min(12, len(want))])
			}
		}
	}
}
