// This file renders a source as a PNG contact sheet so a person can check what the classes look like.

package dataset

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
)

// WriteGridPNG writes a PNG grid of src's examples with one row per class and perClass columns, taking
// examples in index order, each image enlarged scale times (nearest neighbour). Rows of classes with fewer
// than perClass examples in src are left partly empty. Sources with 1 (grey) or 3 (RGB) channels are
// supported.
func WriteGridPNG(w io.Writer, src Source, perClass, scale int) error {
	if perClass <= 0 || scale <= 0 {
		return fmt.Errorf("dataset: grid needs perClass > 0 and scale > 0 (got %d, %d)", perClass, scale)
	}
	c, h, wd := src.ImageShape()
	if c != 1 && c != 3 {
		return fmt.Errorf("dataset: grid can draw 1- or 3-channel images (got %d channels)", c)
	}
	classes := src.NumClasses()
	const gutter = 2
	cellW, cellH := wd*scale+gutter, h*scale+gutter
	img := image.NewRGBA(image.Rect(0, 0, perClass*cellW+gutter, classes*cellH+gutter))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	filled := make([]int, classes)
	remaining := classes * perClass
	pixels := make([]uint8, c*h*wd)
	for i := 0; i < src.Len() && remaining > 0; i++ {
		label, err := src.Get(i, pixels)
		if err != nil {
			return fmt.Errorf("dataset: grid: %w", err)
		}
		if label < 0 || label >= classes {
			return fmt.Errorf("dataset: grid: example %d has label %d outside [0, %d)", i, label, classes)
		}
		col := filled[label]
		if col >= perClass {
			continue
		}
		filled[label]++
		remaining--
		x0, y0 := gutter+col*cellW, gutter+label*cellH
		for y := range h * scale {
			for x := range wd * scale {
				p := (y/scale)*wd + x/scale
				var rgb color.RGBA
				if c == 1 {
					rgb = color.RGBA{pixels[p], pixels[p], pixels[p], 255}
				} else {
					rgb = color.RGBA{pixels[p], pixels[h*wd+p], pixels[2*h*wd+p], 255}
				}
				img.SetRGBA(x0+x, y0+y, rgb)
			}
		}
	}
	if err := png.Encode(w, img); err != nil {
		return fmt.Errorf("dataset: grid: encoding PNG: %w", err)
	}
	return nil
}
