package backendtest

import (
	"fmt"
	"sync"
	"time"

	"resnet/internal/backend"
)

// SyncGroup joins the ranks of a data-parallel job simulated in one process, each rank a goroutine with a
// device of its own, for tests of synchronised batch norm. Its syncers sum through memory: every rank
// downloads its tensor, the last to arrive adds the ranks' values in rank order, in float32 as a host
// all-reduce would, and every rank uploads the sum.
type SyncGroup struct {
	mu      sync.Mutex
	parts   [][]float32
	arrived int
	done    chan struct{} // closed when the current round's sum is ready
	sum     []float32
	err     error
	calls   int
}

// syncWait is how long a rank waits for the others before it gives up (a rank that failed before it
// reached the exchange would otherwise hang the test).
const syncWait = 30 * time.Second

// NewSyncGroup returns one syncer per device, rank i on devs[i].
func NewSyncGroup(devs []backend.Device) (*SyncGroup, []backend.BatchNormSyncer) {
	g := &SyncGroup{parts: make([][]float32, len(devs)), done: make(chan struct{})}
	s := make([]backend.BatchNormSyncer, len(devs))
	for i, d := range devs {
		s[i] = &memSyncer{g: g, rank: i, dev: d}
	}
	return g, s
}

// Rounds is the number of exchanges the group has completed.
func (g *SyncGroup) Rounds() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls
}

type memSyncer struct {
	g    *SyncGroup
	rank int
	dev  backend.Device
}

func (s *memSyncer) Rank() int      { return s.rank }
func (s *memSyncer) WorldSize() int { return len(s.g.parts) }

// SumStats implements backend.BatchNormSyncer.
func (s *memSyncer) SumStats(t backend.Tensor) error {
	host := make([]float32, t.Numel())
	if err := s.dev.Download(host, t); err != nil {
		return err
	}
	sum, err := s.g.allReduce(s.rank, host)
	if err != nil {
		return err
	}
	return s.dev.Upload(t, sum)
}

// allReduce hands in rank's values and returns the sum over the ranks once all have handed theirs in.
func (g *SyncGroup) allReduce(rank int, v []float32) ([]float32, error) {
	g.mu.Lock()
	g.parts[rank] = v
	g.arrived++
	done := g.done
	if g.arrived == len(g.parts) {
		g.sum, g.err = sumInRankOrder(g.parts)
		g.arrived, g.calls = 0, g.calls+1
		g.done = make(chan struct{})
		close(done)
	}
	g.mu.Unlock()
	select {
	case <-done:
	case <-time.After(syncWait):
		return nil, fmt.Errorf("rank %d waited %v for the other ranks", rank, syncWait)
	}
	// The next round cannot complete before this rank hands in its values, so sum and err are this round's.
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.sum, g.err
}

func sumInRankOrder(parts [][]float32) ([]float32, error) {
	sum := append([]float32(nil), parts[0]...)
	for r, p := range parts[1:] {
		if len(p) != len(sum) {
			return nil, fmt.Errorf("rank %d summed %d values, rank 0 %d", r+1, len(p), len(sum))
		}
		for i, v := range p {
			sum[i] += v
		}
	}
	return sum, nil
}
