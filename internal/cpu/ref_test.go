package cpu

// Naive float64 reference implementations of every op: the obvious loops, written for clarity, not speed.

import (
	"math"

	"resnet/internal/backend"
)

type convCase struct {
	n, cin, h, w, cout, k, stride, pad int
	groups                             int // 0: ungrouped
}

func (c convCase) oh() int { return backend.OutSize(c.h, c.k, c.stride, c.pad) }
func (c convCase) ow() int { return backend.OutSize(c.w, c.k, c.stride, c.pad) }

func (c convCase) params() backend.ConvParams {
	return backend.ConvParams{Stride: c.stride, Pad: c.pad, Groups: c.groups}
}

// wcin is the weight's input channels: those of one group.
func (c convCase) wcin() int { return c.cin / max(c.groups, 1) }

// naiveConv visits every (image, output channel, output position, input channel of its group, kernel tap)
// and calls f with the flat indices of x, w and y that tap connects.
func naiveConv(c convCase, f func(xi, wi, yi int)) {
	oh, ow := c.oh(), c.ow()
	cin, coutG := c.wcin(), c.cout/max(c.groups, 1)
	for b := 0; b < c.n; b++ {
		for co := 0; co < c.cout; co++ {
			c0 := co / coutG * cin // the group's first input channel
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					for ci := 0; ci < cin; ci++ {
						for i := 0; i < c.k; i++ {
							for j := 0; j < c.k; j++ {
								iy, ix := oy*c.stride-c.pad+i, ox*c.stride-c.pad+j
								if iy < 0 || iy >= c.h || ix < 0 || ix >= c.w {
									continue
								}
								f(((b*c.cin+c0+ci)*c.h+iy)*c.w+ix, ((co*cin+ci)*c.k+i)*c.k+j, ((b*c.cout+co)*oh+oy)*ow+ox)
							}
						}
					}
				}
			}
		}
	}
}

func naiveConvForward(c convCase, x, w []float32) []float64 {
	y := make([]float64, c.n*c.cout*c.oh()*c.ow())
	naiveConv(c, func(xi, wi, yi int) { y[yi] += float64(x[xi]) * float64(w[wi]) })
	return y
}

func naiveConvBackwardData(c convCase, dy, w []float32) []float64 {
	dx := make([]float64, c.n*c.cin*c.h*c.w)
	naiveConv(c, func(xi, wi, yi int) { dx[xi] += float64(dy[yi]) * float64(w[wi]) })
	return dx
}

func naiveConvBackwardFilter(c convCase, x, dy []float32) []float64 {
	dw := make([]float64, c.cout*c.wcin()*c.k*c.k)
	naiveConv(c, func(xi, wi, yi int) { dw[wi] += float64(dy[yi]) * float64(x[xi]) })
	return dw
}

type bnCase struct {
	n, c, h, w int
	relu       bool
	// Residual input shape (cz, hz, wz); zero cz means no residual.
	cz, hz, wz int
}

func (b bnCase) residual() bool { return b.cz > 0 }

// zIndex returns the flat index of z that the shortcut reads for output (n, c, h, w), or -1 when it reads
// nothing (channel outside the centred window).
func (b bnCase) zIndex(n, c, h, w int) int {
	off, s := (b.c-b.cz)/2, b.hz/b.h
	zc := c - off
	if !b.residual() || zc < 0 || zc >= b.cz {
		return -1
	}
	return ((n*b.cz+zc)*b.hz+h*s)*b.wz + w*s
}

// naiveStats returns the per-channel mean and biased variance of x, two passes in float64.
func naiveStats(b bnCase, x []float32) (mean, variance []float64) {
	mean, variance = make([]float64, b.c), make([]float64, b.c)
	m := float64(b.n * b.h * b.w)
	for c := 0; c < b.c; c++ {
		for n := 0; n < b.n; n++ {
			for i := 0; i < b.h*b.w; i++ {
				mean[c] += float64(x[(n*b.c+c)*b.h*b.w+i])
			}
		}
		mean[c] /= m
		for n := 0; n < b.n; n++ {
			for i := 0; i < b.h*b.w; i++ {
				d := float64(x[(n*b.c+c)*b.h*b.w+i]) - mean[c]
				variance[c] += d * d
			}
		}
		variance[c] /= m
	}
	return mean, variance
}

// naiveBNForward applies y = act(gamma*(x-mean)/sqrt(var+eps) + beta + shortcut(z)).
func naiveBNForward(b bnCase, x, z, gamma, beta []float32, mean, variance []float64, eps float64) []float64 {
	y := make([]float64, len(x))
	for n := 0; n < b.n; n++ {
		for c := 0; c < b.c; c++ {
			for h := 0; h < b.h; h++ {
				for w := 0; w < b.w; w++ {
					i := ((n*b.c+c)*b.h+h)*b.w + w
					v := float64(gamma[c])*(float64(x[i])-mean[c])/math.Sqrt(variance[c]+eps) + float64(beta[c])
					if zi := b.zIndex(n, c, h, w); zi >= 0 {
						v += float64(z[zi])
					}
					if b.relu && v < 0 {
						v = 0
					}
					y[i] = v
				}
			}
		}
	}
	return y
}

// naiveBNBackward is the textbook batch-norm gradient with the ReLU mask taken from y and the shortcut's
// adjoint scattered into dz.
func naiveBNBackward(b bnCase, x, y, dy, gamma []float32, eps float64) (dx, dgamma, dbeta, dz []float64) {
	mean, variance := naiveStats(b, x)
	m := float64(b.n * b.h * b.w)
	dx, dgamma, dbeta = make([]float64, len(x)), make([]float64, b.c), make([]float64, b.c)
	if b.residual() {
		dz = make([]float64, b.n*b.cz*b.hz*b.wz)
	}
	gy := make([]float64, len(x))
	for i := range gy {
		gy[i] = float64(dy[i])
		if b.relu && y[i] <= 0 {
			gy[i] = 0
		}
	}
	hw := b.h * b.w
	for c := 0; c < b.c; c++ {
		inv := 1 / math.Sqrt(variance[c]+eps)
		for n := 0; n < b.n; n++ {
			for i := 0; i < hw; i++ {
				k := (n*b.c+c)*hw + i
				dbeta[c] += gy[k]
				dgamma[c] += gy[k] * (float64(x[k]) - mean[c]) * inv
			}
		}
		for n := 0; n < b.n; n++ {
			for i := 0; i < hw; i++ {
				k := (n*b.c+c)*hw + i
				xhat := (float64(x[k]) - mean[c]) * inv
				dx[k] = float64(gamma[c]) * inv / m * (m*gy[k] - dbeta[c] - xhat*dgamma[c])
				if zi := b.zIndex(n, c, i/b.w, i%b.w); zi >= 0 {
					dz[zi] = gy[k]
				}
			}
		}
	}
	return dx, dgamma, dbeta, dz
}

type poolCase struct {
	n, c, h, w, k, stride, pad int
}

func (p poolCase) oh() int { return backend.OutSize(p.h, p.k, p.stride, p.pad) }
func (p poolCase) ow() int { return backend.OutSize(p.w, p.k, p.stride, p.pad) }

// naiveMaxPool returns the pooled output and, per output, the flat index of the first maximum of its
// window in row-major order (padding never wins).
func naiveMaxPool(p poolCase, x []float32) (y []float64, arg []int) {
	oh, ow := p.oh(), p.ow()
	for pl := 0; pl < p.n*p.c; pl++ {
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				best, at := math.Inf(-1), -1
				for i := 0; i < p.k; i++ {
					for j := 0; j < p.k; j++ {
						iy, ix := oy*p.stride-p.pad+i, ox*p.stride-p.pad+j
						if iy < 0 || iy >= p.h || ix < 0 || ix >= p.w {
							continue
						}
						k := (pl*p.h+iy)*p.w + ix
						if at < 0 || float64(x[k]) > best {
							best, at = float64(x[k]), k
						}
					}
				}
				y, arg = append(y, best), append(arg, at)
			}
		}
	}
	return y, arg
}

// naiveSoftmaxCE returns per-sample losses and (softmax - onehot)*scale.
func naiveSoftmaxCE(n, k int, logits []float32, labels []int32, scale float64) (loss, dlogits []float64) {
	loss, dlogits = make([]float64, n), make([]float64, n*k)
	for s := 0; s < n; s++ {
		row := logits[s*k : (s+1)*k]
		m := math.Inf(-1)
		for _, v := range row {
			m = math.Max(m, float64(v))
		}
		var sum float64
		for _, v := range row {
			sum += math.Exp(float64(v) - m)
		}
		loss[s] = -(float64(row[labels[s]]) - m - math.Log(sum))
		for c, v := range row {
			p := math.Exp(float64(v)-m) / sum
			if c == int(labels[s]) {
				p--
			}
			dlogits[s*k+c] = p * scale
		}
	}
	return loss, dlogits
}

// dot64 is sum a[i]*b[i] in float64: the scalar loss whose gradient the finite-difference checks test.
func dot64(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

func widen(s []float32) []float64 {
	out := make([]float64, len(s))
	for i, v := range s {
		out[i] = float64(v)
	}
	return out
}
