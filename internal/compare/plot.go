package compare

import (
	"bytes"
	"fmt"
	"image/color"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// palette colours the curves by depth, so that plain-N and ResNet-N share a colour across the panels, as
// in the paper's figures.
var palette = []color.RGBA{
	{0xd6, 0x27, 0x28, 0xff}, // red
	{0x1f, 0x77, 0xb4, 0xff}, // blue
	{0x2c, 0xa0, 0x2c, 0xff}, // green
	{0xff, 0x7f, 0x0e, 0xff}, // orange
	{0x94, 0x67, 0xbd, 0xff}, // purple
	{0x8c, 0x56, 0x4b, 0xff}, // brown
	{0x17, 0xbe, 0xcf, 0xff}, // cyan
	{0x7f, 0x7f, 0x7f, 0xff}, // grey
}

// Figure size: two panels side by side, or one.
const (
	panelWidth  = 5 * vg.Inch
	panelHeight = 4 * vg.Inch
)

// Curves draws the error curves: one panel for the plain networks and one for the residual networks
// (only the panels that have models), error in percent against iterations, a thin line for training
// error and a bold one for test error per model. It returns the figure as PNG and as SVG.
func Curves(s *Summary) (pngData, svgData []byte, err error) {
	var panels []*plot.Plot
	depths := map[int]int{}
	var order []int
	for _, m := range s.Models {
		if _, ok := depths[m.Depth]; !ok {
			depths[m.Depth] = 0
			order = append(order, m.Depth)
		}
	}
	sort.Ints(order)
	for i, d := range order {
		depths[d] = i
	}
	maxErr := 0.0
	for _, m := range s.Models {
		for _, p := range m.Curve {
			maxErr = max(maxErr, 100*p.TestErr)
			if p.TrainErr.Finite() {
				maxErr = max(maxErr, 100*float64(p.TrainErr))
			}
		}
	}
	for _, residual := range []bool{false, true} {
		var ms []ModelSummary
		for _, m := range s.Models {
			if m.Residual == residual {
				ms = append(ms, m)
			}
		}
		if len(ms) == 0 {
			continue
		}
		p, err := panel(ms, residual, depths, maxErr)
		if err != nil {
			return nil, nil, err
		}
		panels = append(panels, p)
	}
	return render(panels, "compare")
}

// render draws panels side by side and returns the figure as PNG and as SVG; op names the command in
// errors.
func render(panels []*plot.Plot, op string) (pngData, svgData []byte, err error) {
	w := panelWidth * vg.Length(len(panels))
	img := vgimg.NewWith(vgimg.UseWH(w, panelHeight), vgimg.UseDPI(120), vgimg.UseBackgroundColor(color.White))
	drawPanels(panels, draw.New(img))
	var pngBuf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&pngBuf); err != nil {
		return nil, nil, fmt.Errorf("%s: rendering PNG: %w", op, err)
	}
	svg := vgsvg.New(w, panelHeight)
	drawPanels(panels, draw.New(svg))
	var svgBuf bytes.Buffer
	if _, err := svg.WriteTo(&svgBuf); err != nil {
		return nil, nil, fmt.Errorf("%s: rendering SVG: %w", op, err)
	}
	return pngBuf.Bytes(), svgBuf.Bytes(), nil
}

func drawPanels(panels []*plot.Plot, dc draw.Canvas) {
	tiles := draw.Tiles{Rows: 1, Cols: len(panels), PadX: vg.Inch / 4, PadTop: vg.Inch / 10, PadBottom: vg.Inch / 10, PadLeft: vg.Inch / 10, PadRight: vg.Inch / 10}
	canvases := plot.Align([][]*plot.Plot{panels}, tiles, dc)
	for i, p := range panels {
		p.Draw(canvases[0][i])
	}
}

// panel is one family's plot.
func panel(ms []ModelSummary, residual bool, depths map[int]int, maxErr float64) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "plain networks (thin: training error, bold: test error)"
	if residual {
		p.Title.Text = "residual networks (thin: training error, bold: test error)"
	}
	p.X.Label.Text = "iterations"
	p.Y.Label.Text = "error (%)"
	p.Y.Min, p.Y.Max = 0, max(5, maxErr*1.05)
	p.Add(plotter.NewGrid())
	// Error curves start high on the left and fall to the right: the lower left corner stays clear.
	p.Legend.Top, p.Legend.Left = false, true
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(8), vg.Points(8)
	for _, m := range ms {
		c := palette[depths[m.Depth]%len(palette)]
		train, test := make(plotter.XYs, 0, len(m.Curve)+1), make(plotter.XYs, 0, len(m.Curve))
		for _, pt := range m.Curve {
			if pt.TrainErr.Finite() { // an epoch without a training error leaves a gap
				train = append(train, plotter.XY{X: float64(pt.Step), Y: 100 * float64(pt.TrainErr)})
			}
			test = append(test, plotter.XY{X: float64(pt.Step), Y: 100 * pt.TestErr})
		}
		if err := addPair(p, m.Name, c, train, test); err != nil {
			return nil, fmt.Errorf("compare: %w", err)
		}
	}
	return p, nil
}

// addPair adds a run's training curve (thin) and evaluation curve (bold) in colour c, the bold one in the
// legend under name.
func addPair(p *plot.Plot, name string, c color.Color, train, test plotter.XYs) error {
	thin, err := plotter.NewLine(train)
	if err != nil {
		return fmt.Errorf("%s training curve: %w", name, err)
	}
	thin.Color, thin.Width = c, vg.Points(1)
	bold, err := plotter.NewLine(test)
	if err != nil {
		return fmt.Errorf("%s evaluation curve: %w", name, err)
	}
	bold.Color, bold.Width = c, vg.Points(2.6)
	p.Add(thin, bold)
	p.Legend.Add(name, bold)
	return nil
}
