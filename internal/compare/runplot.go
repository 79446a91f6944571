package compare

// The curves of any runs (`resnet plot`): error and loss, training and evaluation, against epochs or steps,
// drawn with the comparison's plotting code.

import (
	"fmt"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"resnet/internal/train"
)

// RunCurve is one run's metrics.jsonl under the name its curves carry.
type RunCurve struct {
	Name    string
	Metrics []train.Metrics
}

// RunCurves draws two panels, top-1 error (%) and loss, each with a thin training and a bold evaluation
// curve per run in one colour per run, against steps (byStep) or epochs. A value that is not finite (a
// diverged epoch's null) leaves a gap. It returns the figure as PNG and as SVG.
func RunCurves(runs []RunCurve, byStep bool) (pngData, svgData []byte, err error) {
	if len(runs) == 0 {
		return nil, nil, fmt.Errorf("plot: no runs to draw")
	}
	xLabel := "epochs"
	if byStep {
		xLabel = "iterations"
	}
	type quantity struct {
		title, label string
		train, test  func(m train.Metrics) float64
	}
	quantities := []quantity{
		{"top-1 error (thin: training, bold: evaluation)", "error (%)",
			func(m train.Metrics) float64 { return 100 * float64(m.TrainErr) }, func(m train.Metrics) float64 { return 100 * m.TestErr }},
		{"loss (thin: training, bold: evaluation)", "cross-entropy loss",
			func(m train.Metrics) float64 { return float64(m.TrainLoss) }, func(m train.Metrics) float64 { return float64(m.TestLoss) }},
	}
	var panels []*plot.Plot
	for _, q := range quantities {
		p := plot.New()
		p.Title.Text = q.title
		p.X.Label.Text, p.Y.Label.Text = xLabel, q.label
		p.Y.Min = 0
		p.Add(plotter.NewGrid())
		p.Legend.Top, p.Legend.Left = true, false
		p.Legend.XOffs, p.Legend.YOffs = vg.Points(-8), vg.Points(-8)
		for i, r := range runs {
			var tr, te plotter.XYs
			for _, m := range r.Metrics {
				x := float64(m.Epoch)
				if byStep {
					x = float64(m.Step)
				}
				if v := q.train(m); finite(v) {
					tr = append(tr, plotter.XY{X: x, Y: v})
				}
				if v := q.test(m); finite(v) {
					te = append(te, plotter.XY{X: x, Y: v})
				}
			}
			if len(te) == 0 {
				return nil, nil, fmt.Errorf("plot: %s has no finite %s to draw", r.Name, q.label)
			}
			if err := addPair(p, r.Name, palette[i%len(palette)], tr, te); err != nil {
				return nil, nil, fmt.Errorf("plot: %w", err)
			}
		}
		panels = append(panels, p)
	}
	return render(panels, "plot")
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
