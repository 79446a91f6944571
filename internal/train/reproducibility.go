package train

import (
	"strings"

	"resnet/internal/backend"
	"resnet/internal/model"
)

// Reproducibility is <run>/reproducibility.json: what the run's numbers depend on besides its config and
// seed. The trainer writes it after the first step of each process that trains the run (when the device
// has chosen its convolution algorithms) and again after an evaluation that made it choose more, so it
// describes the latest process.
type Reproducibility struct {
	// Version is the resnet binary's (its kernels are built into it).
	Version string `json:"resnet_version"`
	// Step is the optimizer step after which the record was written.
	Step int64 `json:"step"`
	// Environment is the device's: the backend, the GPU or CPU, driver and library versions, and the
	// settings that change results (backend.Reporter.Environment), with the activation format the net
	// computes in: precision (fp32, bf16, fp16, as cuda.precision spells it) and layout (nchw, nhwc).
	Environment map[string]string `json:"environment"`
	// Convolutions are the algorithms the device chose, in the order it chose them (none on the CPU).
	Convolutions []ConvAlgorithm `json:"convolutions"`
}

// ConvAlgorithm is the algorithm chosen for one direction of one convolution shape, with the layers of
// the net that have that shape.
type ConvAlgorithm struct {
	Layers         []string `json:"layers"`
	Geometry       string   `json:"geometry"`
	Direction      string   `json:"direction"` // forward, backward_data or backward_filter
	Algorithm      string   `json:"algorithm"`
	WorkspaceBytes int64    `json:"workspace_bytes"`
	Deterministic  bool     `json:"deterministic"`
	ChosenBy       string   `json:"chosen_by"` // heuristic, timed or fallback (backend.ConvChoice)
}

// NewReproducibility describes dev as net's device after step steps.
func NewReproducibility(version string, step int64, dev backend.Device, net *model.Net) Reproducibility {
	rec := Reproducibility{Version: version, Step: step, Environment: map[string]string{"backend": dev.Name()},
		Convolutions: []ConvAlgorithm{}}
	rep, ok := dev.(backend.Reporter)
	if ok {
		rec.Environment = rep.Environment()
	}
	dt, layout := backend.ActivationFormat(dev)
	rec.Environment["precision"] = backend.PrecisionName(dt)
	rec.Environment["layout"] = strings.ToLower(layout.String())
	if !ok {
		return rec
	}
	layers := map[int][]model.ConvLayer{} // by batch size
	for _, c := range rep.ConvAlgorithms() {
		if _, done := layers[c.Geometry.N]; !done {
			layers[c.Geometry.N] = net.ConvLayers(c.Geometry.N)
		}
		a := ConvAlgorithm{Layers: []string{}, Geometry: c.Geometry.String(), Direction: c.Direction,
			Algorithm: c.Algorithm, WorkspaceBytes: c.WorkspaceBytes, Deterministic: c.Deterministic, ChosenBy: c.ChosenBy}
		for _, l := range layers[c.Geometry.N] {
			if l.Geometry == c.Geometry {
				a.Layers = append(a.Layers, l.Name)
			}
		}
		rec.Convolutions = append(rec.Convolutions, a)
	}
	return rec
}
