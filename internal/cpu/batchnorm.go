package cpu

// Batch normalisation over (N, H, W) per channel, with the optional fused residual add and ReLU of
// backend.BatchNormParams. Statistics are accumulated in float64 over a fixed partition: piece (c, g)
// covers channel c of batch chunk g (bnChunks(N) chunks), its partial results go to their own slot, and
// the slots are combined in chunk order, so the result does not depend on the worker count.

import (
	"math"

	"resnet/internal/backend"
)

// bnChunks is the number of batch chunks a channel's statistics are split into.
func bnChunks(n int) int { return max(1, min(n, 8)) }

// shortcut describes the residual input z of a batch norm: (N, C, H, W) of its own, read at channel
// c-off and position (h*stride, w*stride) for output (c, h, w); channels outside [off, off+C) get 0.
type shortcut struct {
	c, h, w     int
	off, stride int
}

// bnGeom is the geometry of one batch-norm call.
type bnGeom struct {
	n, c, hw, w int // w (the row length) matters only for strided shortcuts
	chunks      int
	sc          shortcut
}

// newBNGeom returns the geometry of a batch-norm call on the checked geometry g.
func newBNGeom(g backend.BatchNormGeometry) bnGeom {
	return bnGeom{n: g.N, c: g.C, hw: g.H * g.W, w: g.W, chunks: bnChunks(g.N),
		sc: shortcut{c: g.ZC, h: g.H * g.ZStride, w: g.W * g.ZStride, off: g.ZOff(), stride: g.ZStride}}
}

type bnKind uint8

const (
	bnStats bnKind = iota
	bnNormalize
	bnGradStats
	bnGrad
)

// bnJob is the state of one batch-norm call; a piece is (channel, batch chunk) = i/chunks, i%chunks.
type bnJob struct {
	kind     bnKind
	g        bnGeom
	relu     bool
	residual bool
	x, y, z  []float32
	dy, dx   []float32
	dz       []float32
	// Per-channel constants of the pass, chan32[4*c:4*c+4] (see the passes for their meaning).
	chan32 []float32
	stats  []float64 // per-piece partials, 3 per piece
}

func (j *bnJob) run(_, i int) {
	c, chunk := i/j.g.chunks, i%j.g.chunks
	switch j.kind {
	case bnStats:
		j.chunkStats(c, chunk, i)
	case bnNormalize:
		j.normalize(c, chunk)
	case bnGradStats:
		j.gradStats(c, chunk, i)
	case bnGrad:
		j.grad(c, chunk)
	}
}

// plane is channel c of image n of an (N, C, H*W) tensor.
func (j *bnJob) plane(t []float32, n, c int) []float32 {
	off := (n*j.g.c + c) * j.g.hw
	return t[off : off+j.g.hw]
}

// chunkStats computes count, mean and sum of squared deviations of channel c over chunk g, two-pass within
// the chunk for accuracy.
func (j *bnJob) chunkStats(c, g, slot int) {
	lo, hi := split(j.g.n, j.g.chunks, g)
	var s [4]float64
	for n := lo; n < hi; n++ {
		x := j.plane(j.x, n, c)
		m := len(x) &^ 3
		sumLanes(&s, x[:m])
		for _, v := range x[m:] {
			s[0] += float64(v)
		}
	}
	count := float64((hi - lo) * j.g.hw)
	mean := ((s[0] + s[1]) + (s[2] + s[3])) / count
	s = [4]float64{}
	for n := lo; n < hi; n++ {
		x := j.plane(j.x, n, c)
		m := len(x) &^ 3
		sqDevLanes(&s, x[:m], mean)
		for _, v := range x[m:] {
			d := float64(v) - mean
			s[0] += d * d
		}
	}
	st := j.stats[3*slot : 3*slot+3]
	st[0], st[1], st[2] = count, mean, (s[0]+s[1])+(s[2]+s[3])
}

// The per-row loops of the passes below have assembly forms (batchnorm_amd64.s) that do the same
// arithmetic in the same order, element by element and lane by lane; these are their portable forms.

// sumLanesGo adds x[i] to acc[i%4] in index order; len(x) is a multiple of 4.
func sumLanesGo(acc *[4]float64, x []float32) {
	for i := 0; i+4 <= len(x); i += 4 {
		xs := (*[4]float32)(x[i : i+4])
		for q := range 4 {
			acc[q] += float64(xs[q])
		}
	}
}

// sqDevLanesGo adds (x[i] - mean)^2 to acc[i%4] in index order; len(x) is a multiple of 4.
func sqDevLanesGo(acc *[4]float64, x []float32, mean float64) {
	for i := 0; i+4 <= len(x); i += 4 {
		xs := (*[4]float32)(x[i : i+4])
		for q := range 4 {
			d := float64(xs[q]) - mean
			acc[q] += d * d
		}
	}
}

// gradLanesGo adds gy = dy[i] (masked by y[i] > 0 when y is not nil) to sdy[i%4] and gy*(x[i] - mean) to
// sdyx[i%4] in index order; len(x) is a multiple of 4.
func gradLanesGo(sdy, sdyx *[4]float64, x, dy, y []float32, mean float64) {
	dy = dy[:len(x)]
	if y != nil {
		y = y[:len(x)]
	}
	for i := 0; i+4 <= len(x); i += 4 {
		xs, g := (*[4]float32)(x[i:i+4]), *(*[4]float32)(dy[i : i+4])
		if y != nil {
			ys := (*[4]float32)(y[i : i+4])
			g[0], g[1], g[2], g[3] = reluGrad(g[0], ys[0]), reluGrad(g[1], ys[1]), reluGrad(g[2], ys[2]), reluGrad(g[3], ys[3])
		}
		for q := range 4 {
			gy := float64(g[q])
			sdy[q] += gy
			sdyx[q] += gy * (float64(xs[q]) - mean)
		}
	}
}

// normalizeRowGo writes y[i] = (x[i] - mean)*scale + shift, plus z[i] when z is not nil, then ReLU when
// act is set.
func normalizeRowGo(y, x, z []float32, mean, scale, shift float32, act bool) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] = (v-mean)*scale + shift
	}
	if z != nil {
		z = z[:len(y)]
		for i, v := range z {
			y[i] += v
		}
	}
	if act {
		for i, v := range y {
			y[i] = relu(v)
		}
	}
}

// gradRowGo writes dx[i] = k*(gy - a - (x[i] - mean)*b) with gy = dy[i] (masked by y[i] > 0 when y is not
// nil), and gy to dz[i] when dz is not nil.
func gradRowGo(dx, x, dy, y, dz []float32, mean, k, a, b float32) {
	dx, dy = dx[:len(x)], dy[:len(x)]
	if y != nil {
		y = y[:len(x)]
		for i, v := range x {
			gy := reluGrad(dy[i], y[i])
			dx[i] = k * (gy - a - (v-mean)*b)
		}
	} else {
		for i, v := range x {
			dx[i] = k * (dy[i] - a - (v-mean)*b)
		}
	}
	if dz == nil {
		return
	}
	dz = dz[:len(x)]
	if y != nil {
		for i, g := range dy {
			dz[i] = reluGrad(g, y[i])
		}
		return
	}
	copy(dz, dy)
}

// normalize writes y = act((x - mean)*scale + shift + shortcut(z)) for channel c over chunk g, with
// chan32[4c:] = mean, scale, shift.
func (j *bnJob) normalize(c, g int) {
	k := j.chan32[4*c : 4*c+3]
	mean, scale, shift := k[0], k[1], k[2]
	lo, hi := split(j.g.n, j.g.chunks, g)
	sc := j.g.sc
	zc := c - sc.off
	hasZ := j.residual && zc >= 0 && zc < sc.c
	for n := lo; n < hi; n++ {
		x := j.plane(j.x, n, c)
		y := j.plane(j.y, n, c)
		y = y[:len(x)]
		var z []float32
		if hasZ {
			zoff := (n*sc.c + zc) * sc.h * sc.w
			z = j.z[zoff : zoff+sc.h*sc.w]
		}
		if z == nil || sc.stride == 1 {
			normalizeRow(y, x, z, mean, scale, shift, j.relu)
			continue
		}
		normalizeRow(y, x, nil, mean, scale, shift, false)
		w := j.g.w
		for r := 0; r < len(y)/w; r++ {
			yr := y[r*w : (r+1)*w]
			zr := z[r*sc.stride*sc.w:]
			for q := range yr {
				yr[q] += zr[q*sc.stride]
			}
		}
		if j.relu {
			for i, v := range y {
				y[i] = relu(v)
			}
		}
	}
}

// positive is all ones when the float32 with bits b is greater than zero (not -0, not negative), else 0.
// The activations' signs are random, so a branch here would mispredict half the time.
func positive(b uint32) uint32 {
	s := int32(b)
	return uint32((-s & ^s) >> 31)
}

// relu is max(v, 0) without a branch (a NaN with the sign bit clear passes through).
func relu(v float32) float32 {
	b := math.Float32bits(v)
	return math.Float32frombits(b & positive(b))
}

// reluGrad is g where y > 0, else 0, without a branch.
func reluGrad(g, y float32) float32 {
	return math.Float32frombits(math.Float32bits(g) & positive(math.Float32bits(y)))
}

// gradStats sums the (ReLU-masked) output gradient and its product with x - mean of channel c over chunk
// g, with chan32[4c] = mean.
func (j *bnJob) gradStats(c, g, slot int) {
	mean := float64(j.chan32[4*c])
	lo, hi := split(j.g.n, j.g.chunks, g)
	// Four interleaved partial sums per quantity, so the float64 additions do not wait on each other.
	var sdy, sdyx [4]float64
	for n := lo; n < hi; n++ {
		x := j.plane(j.x, n, c)
		dy := j.plane(j.dy, n, c)
		dy = dy[:len(x)]
		var y []float32
		if j.relu {
			y = j.plane(j.y, n, c)
			y = y[:len(x)]
		}
		m := len(x) &^ 3
		var ym []float32
		if y != nil {
			ym = y[:m]
		}
		gradLanes(&sdy, &sdyx, x[:m], dy[:m], ym, mean)
		for i := m; i < len(x); i++ {
			g := dy[i]
			if y != nil {
				g = reluGrad(g, y[i])
			}
			gy := float64(g)
			sdy[0] += gy
			sdyx[0] += gy * (float64(x[i]) - mean)
		}
	}
	st := j.stats[3*slot : 3*slot+2]
	st[0], st[1] = (sdy[0]+sdy[1])+(sdy[2]+sdy[3]), (sdyx[0]+sdyx[1])+(sdyx[2]+sdyx[3])
}

// grad writes dx = k*(gy - a - (x - mean)*b) and the shortcut gradient for channel c over chunk g, with
// chan32[4c:] = mean, k, a, b.
func (j *bnJob) grad(c, g int) {
	q := j.chan32[4*c : 4*c+4]
	mean, k, a, b := q[0], q[1], q[2], q[3]
	lo, hi := split(j.g.n, j.g.chunks, g)
	sc := j.g.sc
	zc := c - sc.off
	hasZ := j.residual && zc >= 0 && zc < sc.c
	for n := lo; n < hi; n++ {
		x := j.plane(j.x, n, c)
		dy := j.plane(j.dy, n, c)
		dx := j.plane(j.dx, n, c)
		dy, dx = dy[:len(x)], dx[:len(x)]
		var y, dz []float32
		if j.relu {
			y = j.plane(j.y, n, c)
			y = y[:len(x)]
		}
		if hasZ {
			zoff := (n*sc.c + zc) * sc.h * sc.w
			dz = j.dz[zoff : zoff+sc.h*sc.w]
			if sc.stride != 1 {
				clear(dz) // positions the strided shortcut does not read
			}
		}
		if dz == nil || sc.stride == 1 {
			gradRow(dx, x, dy, y, dz, mean, k, a, b)
			continue
		}
		gradRow(dx, x, dy, y, nil, mean, k, a, b)
		w := j.g.w
		for r := 0; r < len(x)/w; r++ {
			zr := dz[r*sc.stride*sc.w:]
			for q := 0; q < w; q++ {
				gy := dy[r*w+q]
				if j.relu {
					gy = reluGrad(gy, y[r*w+q])
				}
				zr[q*sc.stride] = gy
			}
		}
	}
}

// bnForwardJob takes the views of the activations of a forward pass.
func bnForwardJob(v *views, p backend.BatchNormParams, g backend.BatchNormGeometry, t backend.BatchNormTensors) bnJob {
	j := bnJob{g: newBNGeom(g), relu: p.ReLU, residual: p.Residual, x: v.f32("X", t.X), y: v.f32("Y", t.Y)}
	if p.Residual {
		j.z = v.f32("Z", t.Z)
	}
	return j
}

// BatchNormForwardTraining implements backend.Device.
func (d *Device) BatchNormForwardTraining(p backend.BatchNormParams, t backend.BatchNormTensors) error {
	geom, err := backend.CheckBatchNormForwardTraining(p, t)
	v := views{op: "BatchNormForwardTraining", err: named(err)}
	j := bnForwardJob(&v, p, geom, t)
	gamma, beta := v.f32("Gamma", t.Gamma), v.f32("Beta", t.Beta)
	rmean, rvar := v.f32("RunningMean", t.RunningMean), v.f32("RunningVar", t.RunningVar)
	smean, sinv := v.f32("SaveMean", t.SaveMean), v.f32("SaveInvStd", t.SaveInvStd)
	if v.err != nil {
		return v.err
	}
	c := j.g.c
	pieces := c * j.g.chunks
	d.stats = grow(d.stats, 3*pieces)
	d.chan32 = grow(d.chan32, 4*c)
	job := &d.jobs.bn
	*job = j
	job.kind, job.stats, job.chan32 = bnStats, d.stats, d.chan32
	d.pool.run(job, pieces)

	// Combine the chunk statistics in chunk order into each channel's first slot; with Sync, those of
	// every rank in rank order.
	stride := 3 * j.g.chunks
	for ch := 0; ch < c; ch++ {
		st := d.stats[stride*ch:]
		for g := 1; g < j.g.chunks; g++ {
			st[0], st[1], st[2] = mergeMoments(st[0], st[1], st[2], st[3*g], st[3*g+1], st[3*g+2])
		}
	}
	if p.Synced() {
		if err := d.syncMoments(p.Sync, c, stride); err != nil {
			return err
		}
	}
	mom := float64(p.Momentum)
	for ch := 0; ch < c; ch++ {
		st := d.stats[stride*ch:]
		total, mean, m2 := st[0], st[1], st[2]
		variance := m2 / total
		invStd := 1 / math.Sqrt(variance+float64(p.Eps))
		smean[ch], sinv[ch] = float32(mean), float32(invStd)
		rmean[ch] = float32((1-mom)*float64(rmean[ch]) + mom*mean)
		rvar[ch] = float32((1-mom)*float64(rvar[ch]) + mom*variance*total/(total-1))
		q := d.chan32[4*ch : 4*ch+4]
		q[0], q[1], q[2] = float32(mean), float32(float64(gamma[ch])*invStd), beta[ch]
	}
	job.kind = bnNormalize
	d.pool.run(job, pieces)
	*job = bnJob{}
	return nil
}

// BatchNormForwardInference implements backend.Device.
func (d *Device) BatchNormForwardInference(p backend.BatchNormParams, t backend.BatchNormTensors) error {
	geom, err := backend.CheckBatchNormForwardInference(p, t)
	v := views{op: "BatchNormForwardInference", err: named(err)}
	j := bnForwardJob(&v, p, geom, t)
	gamma, beta := v.f32("Gamma", t.Gamma), v.f32("Beta", t.Beta)
	rmean, rvar := v.f32("RunningMean", t.RunningMean), v.f32("RunningVar", t.RunningVar)
	if v.err != nil {
		return v.err
	}
	c := j.g.c
	d.chan32 = grow(d.chan32, 4*c)
	for ch := 0; ch < c; ch++ {
		invStd := 1 / math.Sqrt(float64(rvar[ch])+float64(p.Eps))
		q := d.chan32[4*ch : 4*ch+4]
		q[0], q[1], q[2] = rmean[ch], float32(float64(gamma[ch])*invStd), beta[ch]
	}
	job := &d.jobs.bn
	*job = j
	job.kind, job.chan32 = bnNormalize, d.chan32
	d.pool.run(job, c*j.g.chunks)
	*job = bnJob{}
	return nil
}

// BatchNormBackward implements backend.Device. With xhat = (x - mean)*invstd and gy the output gradient
// masked by y > 0 when ReLU is fused:
//
//	dbeta = sum gy,  dgamma = sum gy*xhat,  dx = gamma*invstd*(gy - dbeta/M - xhat*dgamma/M)
//
// and dz = gy read back through the shortcut mapping.
func (d *Device) BatchNormBackward(p backend.BatchNormParams, gr backend.BatchNormGrads) error {
	geom, err := backend.CheckBatchNormBackward(p, gr)
	v := views{op: "BatchNormBackward", err: named(err)}
	j := bnJob{g: newBNGeom(geom), relu: p.ReLU, residual: p.Residual, x: v.f32("X", gr.X), dy: v.f32("DY", gr.DY),
		dx: v.f32("DX", gr.DX)}
	if p.ReLU {
		j.y = v.f32("Y", gr.Y)
	}
	if p.Residual {
		j.dz = v.f32("DZ", gr.DZ)
	}
	gamma, smean, sinv := v.f32("Gamma", gr.Gamma), v.f32("SaveMean", gr.SaveMean), v.f32("SaveInvStd", gr.SaveInvStd)
	dgamma, dbeta := v.f32("DGamma", gr.DGamma), v.f32("DBeta", gr.DBeta)
	if v.err != nil {
		return v.err
	}
	c := j.g.c
	pieces := c * j.g.chunks
	d.stats = grow(d.stats, 3*pieces)
	d.chan32 = grow(d.chan32, 4*c)
	for ch := 0; ch < c; ch++ {
		d.chan32[4*ch] = smean[ch]
	}
	job := &d.jobs.bn
	*job = j
	job.kind, job.stats, job.chan32 = bnGradStats, d.stats, d.chan32
	d.pool.run(job, pieces)

	// Sum the chunks in chunk order into each channel's first slot; with Sync, over the ranks too.
	stride := 3 * j.g.chunks
	for ch := 0; ch < c; ch++ {
		st := d.stats[stride*ch:]
		for g := 1; g < j.g.chunks; g++ {
			st[0] += st[3*g]
			st[1] += st[3*g+1]
		}
	}
	total, share := float64(j.g.n*j.g.hw), 1.0
	if p.Synced() {
		var err error
		if total, err = d.syncGradSums(p.Sync, c, stride, total); err != nil {
			return err
		}
		share = float64(p.Sync.WorldSize())
	}
	for ch := 0; ch < c; ch++ {
		st := d.stats[stride*ch:]
		sdy, sdyx := st[0], st[1]
		inv := float64(sinv[ch])
		db, dg := sdy, sdyx*inv
		dbeta[ch], dgamma[ch] = float32(db/share), float32(dg/share)
		q := d.chan32[4*ch : 4*ch+4]
		q[1] = float32(float64(gamma[ch]) * inv)
		q[2] = float32(db / total)
		q[3] = float32(dg / total * inv)
	}
	job.kind = bnGrad
	d.pool.run(job, pieces)
	*job = bnJob{}
	return nil
}
