// This file holds the weight gradient of stride-1 3x3 convolutions read in place: the kernels
// (filter_gen.go) walk the zero-padded image with nine shifted reads instead of a GEMM over nine packed
// copies of it.

package cpu

// filterKernel is a 3x3 weight-gradient kernel of nr output channels (filter_gen.go's contract).
type filterKernel struct {
	nr int
	fn func(x *float32, wp4 int, b, c *float32, ldc, ow, oh int, add bool)
}

// filterKernels are the kernels this CPU runs, widest first (none off amd64, or without AVX2 and FMA).
var filterKernels = archFilterKernels()

// filterTileMax (a variable for the benchmark) bounds the in-place path to weight gradients of at most 2^18 values (1 MiB), whose
// transposed sum stays in a core's L2 cache between images. Past it, as for ResNet-50's 256- and
// 512-channel layers, adding every image into that sum and transposing it back costs more than the
// packing it saves (0.6x the GEMM path at 14x14 and 7x7, BenchmarkConvFilter).
var filterTileMax = 1 << 18

// filterKernelFor returns the kernel for g's weight gradient, or nil where the GEMM path must run: not a
// stride-1 3x3 convolution, a gradient larger than filterTileMax, or output channels that no kernel's
// width divides.
func filterKernelFor(g *convGeom) *filterKernel {
	if g.KH != 3 || g.KW != 3 || g.Stride != 1 || g.wLen() > filterTileMax {
		return nil
	}
	for i := range filterKernels {
		if g.Cout%filterKernels[i].nr == 0 {
			return &filterKernels[i]
		}
	}
	return nil
}

// filterShifted writes into dst the weight gradient of group grp summed over images [lo, hi), with the
// in-place kernel, and reports whether it did. Per image, the output gradient (Cout, P) is packed
// position-major in panels of nr channels; for each panel and input channel one kernel call adds the
// 9 x nr transposed gradient of the image to ftile (K, Cout), which is transposed into dst at the end. The
// sums run over positions in order within an image and over images in order.
func (j *convJob) filterShifted(worker int, dst []float32, lo, hi, grp int) bool {
	g := &j.g
	fk := filterKernelFor(g)
	if fk == nil {
		return false
	}
	ws := j.d.ws[worker]
	nr, p, cout := fk.nr, g.positions, g.Cout
	hp, wp := g.H+2*g.PadH, g.W+2*g.PadW
	ws.fpanel = grow(ws.fpanel, p*cout)
	ws.ftile = grow(ws.ftile, g.kdim*cout)
	panel, tile := ws.fpanel, ws.ftile
	for n := lo; n < hi; n++ {
		xn, dyn := j.filterImage(n, grp)
		xp := j.padded(worker, xn)
		packPanels(panel, dyn, cout, p, nr)
		_ = xp[g.Cin*hp*wp-1]
		for b := 0; b < cout/nr; b++ {
			pb := panel[b*p*nr : (b+1)*p*nr]
			for ci := 0; ci < g.Cin; ci++ {
				c := tile[ci*9*cout+b*nr : (ci*9+8)*cout+(b+1)*nr]
				fk.fn(&xp[ci*hp*wp], 4*wp, &pb[0], &c[0], cout, g.OW, g.OH, n > lo)
			}
		}
	}
	for r := 0; r < g.kdim; r++ {
		row := tile[r*cout : (r+1)*cout]
		for co, v := range row {
			dst[co*g.kdim+r] = v
		}
	}
	return true
}

// packPanels writes dy (c rows of p positions) as panels of nr rows: panel b holds
// panel[b*p*nr + pos*nr + q] = dy[(b*nr+q)*p + pos]. Eight rows at a time go through the AVX2 transpose
// where the positions are a whole number of its 8 lanes.
func packPanels(panel, dy []float32, c, p, nr int) {
	for b := 0; b < c/nr; b++ {
		pb := panel[b*p*nr : (b+1)*p*nr]
		for q0 := 0; q0 < nr; q0 += 8 {
			var off [8]int
			for q := range off {
				off[q] = (b*nr + q0 + q) * p
			}
			if packLanes8(pb[q0:], nr, dy, &off, 1, p, p) {
				continue
			}
			for q := 0; q < 8; q++ {
				src := dy[off[q] : off[q]+p]
				for pos, v := range src {
					pb[pos*nr+q0+q] = v
				}
			}
		}
	}
}
