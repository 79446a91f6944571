//go:build cuda

package cuda

// Choosing a convolution's cuDNN algorithm, once per geometry, direction and operand alignment.
//
// cuDNN offers candidates two ways: its heuristics (cudnnGetConvolution*Algorithm_v7) rank them without
// running anything, so the same GPU and cuDNN version always give the same list; timing
// (cudnnFind*AlgorithmEx) runs each on the operands and ranks them by the time measured, which varies from
// run to run. Each candidate says whether it is deterministic (the same bits on every run) and how much
// workspace it needs. The choice takes the first usable candidate of one list:
//
//	cuda.deterministic  cuda.benchmark  list        usable
//	true (default)      false           heuristics  deterministic, fits the workspace cap
//	true                true            timed       deterministic, fits the workspace cap
//	false               false           heuristics  fits the workspace cap
//	false               true            timed       fits the workspace cap
//
// and for f32 data without TF32 (RESNET_CUDA_TF32 unset) nothing that runs on TF32 tensor cores; 16-bit data
// is listed with TENSOR_OP math and any candidate's math type is usable (tensor cores on bf16 or f16
// inputs multiply exactly into the f32 accumulator: TF32 is a question of f32 inputs only). When timing fails or
// the timed list has nothing usable, the heuristics choose; when neither has anything, a fallback that
// runs every geometry deterministically does (implicit GEMM forward, algorithm 1 backward).

import (
	"errors"
	"fmt"
	"strings"

	"resnet/internal/backend"
)

// convCandidate is one algorithm cuDNN offers for a direction of a convolution.
type convCandidate struct {
	algo int
	// ok: cuDNN can run the algorithm on this geometry (status CUDNN_STATUS_SUCCESS; when timing, it ran).
	ok            bool
	deterministic bool  // determinism == CUDNN_DETERMINISTIC
	math          int   // cudnnMathType_t the algorithm runs with
	ws            int64 // workspace bytes
}

// algoPolicy is how a device chooses among candidates.
type algoPolicy struct {
	deterministic bool  // only deterministic algorithms
	timed         bool  // rank by timing instead of heuristics
	tf32          bool  // algorithms on TF32 tensor cores are allowed
	wsLimit       int64 // cap on one convolution's workspace
	half          bool  // the data is bf16 or f16: every math type is allowed
}

// algoPolicy is the device's policy, from its options and environment.
func (d *Device) algoPolicy() algoPolicy {
	return algoPolicy{deterministic: !d.opt.Nondeterministic, timed: d.opt.Benchmark, tf32: d.tf32, wsLimit: d.wsLimit}
}

// usable reports whether the policy allows candidate c.
func (p algoPolicy) usable(c convCandidate) bool {
	switch {
	case !c.ok || c.ws > p.wsLimit:
		return false
	case p.deterministic && !c.deterministic:
		return false
	}
	// DEFAULT math may use TF32 on sm_80 and newer; without TF32 such a candidate runs with FMA math.
	return p.half || p.tf32 || c.math == mathFMA || c.math == mathDefault
}

// pick returns the index of the first usable candidate, or -1.
func (p algoPolicy) pick(cands []convCandidate) int {
	for i, c := range cands {
		if p.usable(c) {
			return i
		}
	}
	return -1
}

// fallbackAlgo runs every geometry of direction dir, deterministically, with little or no workspace.
func fallbackAlgo(dir convDir) convCandidate {
	c := convCandidate{algo: 1, ok: true, deterministic: true, math: mathFMA} // backward data and filter ALGO_1
	if dir == convForward {
		c.algo = 0 // IMPLICIT_GEMM
	}
	return c
}

// How a convolution's algorithm was chosen (backend.ConvChoice.ChosenBy).
const (
	chosenByHeuristic = "heuristic"
	chosenByTiming    = "timed"
	chosenByFallback  = "fallback"
)

// chooseConvAlgo chooses the algorithm of direction dir of plan p under policy pol and readies it to run.
// It runs on the owner thread; x, w and y are the operands timing runs on (the output may be scratch).
func chooseConvAlgo(g gpu, pol algoPolicy, p *convPlan, dir convDir, x, w, y uint64) (*convAlgo, error) {
	pol.half = p.geom.DType != backend.F32
	var cands []convCandidate
	chosenBy := chosenByHeuristic
	pick := -1
	if pol.timed {
		var err error
		cands, err = g.convCandidates(p, dir, true, x, w, y, pol.wsLimit)
		var e *Error
		switch {
		case err == nil:
			chosenBy = chosenByTiming
			if pick = pol.pick(cands); pick < 0 {
				chosenBy = chosenByHeuristic + " (no timed candidate was usable)"
			}
		case errors.As(err, &e) && strings.HasPrefix(e.Call, "cudnnFind"):
			chosenBy = chosenByHeuristic + " (timing failed: " + e.Name + ")"
		default:
			return nil, err
		}
	}
	if pick < 0 {
		var err error
		if cands, err = g.convCandidates(p, dir, false, 0, 0, 0, pol.wsLimit); err != nil {
			return nil, err
		}
		pick = pol.pick(cands)
	}
	chosen := fallbackAlgo(dir)
	if pick >= 0 {
		chosen = cands[pick]
	} else {
		chosenBy = chosenByFallback
		if pol.half {
			chosen.math = mathTensorOp
		}
	}
	// A 16-bit candidate runs with the math type cuDNN ranked it under (the combination it reported
	// CUDNN_STATUS_SUCCESS for).
	if !pol.tf32 && !pol.half {
		chosen.math = mathFMA
	}
	a, err := g.newConvAlgo(p, dir, chosen)
	if err != nil {
		return nil, err
	}
	a.algo, a.deterministic, a.chosenBy = chosen.algo, chosen.deterministic, chosenBy
	return a, nil
}

// convDirNames are the directions as backend.ConvChoice.Direction spells them.
var convDirNames = [...]string{
	convForward:        "forward",
	convBackwardData:   "backward_data",
	convBackwardFilter: "backward_filter",
}

// convAlgoName is cuDNN's name of algorithm algo of direction dir.
func convAlgoName(dir convDir, algo int) string {
	if names := convAlgoNames[dir]; algo >= 0 && algo < len(names) {
		return names[algo]
	}
	return fmt.Sprintf("%s algorithm %d", convDirNames[dir], algo)
}

// recordConvChoice keeps the choice for ConvAlgorithms. d.opMu is held.
func (d *Device) recordConvChoice(g convGeom, dir convDir, a *convAlgo) {
	c := backend.ConvChoice{Geometry: g, Direction: convDirNames[dir], Algorithm: convAlgoName(dir, a.algo),
		WorkspaceBytes: a.ws, Deterministic: a.deterministic, ChosenBy: a.chosenBy}
	d.reportMu.Lock()
	defer d.reportMu.Unlock()
	for _, o := range d.convChoices {
		if o == c {
			return // another operand alignment chose the same
		}
	}
	d.convChoices = append(d.convChoices, c)
}
