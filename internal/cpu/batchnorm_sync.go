package cpu

// Synchronised batch norm (backend.BatchNormParams.Sync): the exchanges that replace a rank's per-channel
// statistics and gradient sums with those of the global batch. The layouts of the exchanged tensors are
// backend.BatchNormSyncer's.

import (
	"fmt"

	"resnet/internal/backend"
)

// mergeMoments combines the (count, mean, M2) of two disjoint sets of values, M2 the sum of squared
// deviations from the set's mean (Chan et al.'s pairwise update).
func mergeMoments(na, ma, m2a, nb, mb, m2b float64) (n, mean, m2 float64) {
	n = na + nb
	delta := mb - ma
	mean = ma + delta*nb/n
	m2 = m2a + (m2b + delta*delta*na*nb/n)
	return n, mean, m2
}

// syncTensor returns the device's exchange tensor, resized to shape and zeroed.
func (d *Device) syncTensor(shape backend.Shape) (backend.Tensor, []float32) {
	if d.syncBuf == nil {
		d.syncBuf = &buffer{dt: backend.F32}
	}
	d.syncBuf.f32 = grow(d.syncBuf.f32, shape.Numel())
	clear(d.syncBuf.f32)
	return backend.Tensor{Shape: shape, DType: backend.F32, Layout: backend.NCHW, Buf: d.syncBuf}, d.syncBuf.f32
}

// syncMoments replaces each channel's (count, mean, M2), stats[stride*c:][:3], with those of the global
// batch: the ranks' values, gathered as float32 through s, merged in rank order, so every rank gets the
// same bits.
func (d *Device) syncMoments(s backend.BatchNormSyncer, c, stride int) error {
	world := s.WorldSize()
	t, buf := d.syncTensor(backend.Shape{world, 3, c})
	slot := buf[3*c*s.Rank():]
	for ch := 0; ch < c; ch++ {
		st := d.stats[stride*ch:]
		slot[ch], slot[c+ch], slot[2*c+ch] = float32(st[0]), float32(st[1]), float32(st[2])
	}
	if err := s.SumStats(t); err != nil {
		return fmt.Errorf("cpu: BatchNormForwardTraining: Sync.SumStats: %w", err)
	}
	for ch := 0; ch < c; ch++ {
		n, mean, m2 := float64(buf[ch]), float64(buf[c+ch]), float64(buf[2*c+ch])
		for r := 1; r < world; r++ {
			rs := buf[3*c*r:]
			n, mean, m2 = mergeMoments(n, mean, m2, float64(rs[ch]), float64(rs[c+ch]), float64(rs[2*c+ch]))
		}
		st := d.stats[stride*ch:]
		st[0], st[1], st[2] = n, mean, m2
	}
	return nil
}

// syncGradSums replaces each channel's gradient sums, stats[stride*c:][:2], with their sums over the ranks,
// and returns the global count per channel from this rank's, count.
func (d *Device) syncGradSums(s backend.BatchNormSyncer, c, stride int, count float64) (float64, error) {
	world := s.WorldSize()
	t, buf := d.syncTensor(backend.Shape{2*c + world})
	for ch := 0; ch < c; ch++ {
		st := d.stats[stride*ch:]
		buf[ch], buf[c+ch] = float32(st[0]), float32(st[1])
	}
	buf[2*c+s.Rank()] = float32(count)
	if err := s.SumStats(t); err != nil {
		return 0, fmt.Errorf("cpu: BatchNormBackward: Sync.SumStats: %w", err)
	}
	for ch := 0; ch < c; ch++ {
		st := d.stats[stride*ch:]
		st[0], st[1] = float64(buf[ch]), float64(buf[c+ch])
	}
	total := 0.0
	for _, n := range buf[2*c:] {
		total += float64(n)
	}
	return total, nil
}
