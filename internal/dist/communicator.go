package dist

import "fmt"

// Communicator runs collectives among the ranks of a job. Every rank must call the same collectives in
// the same order with buffers of the same length (AllGather's may differ). After an error the
// communicator is broken: every later call returns that error.
type Communicator interface {
	Rank() int
	WorldSize() int
	// AllReduceSum replaces buf on every rank with the element-wise sum of all ranks' buf.
	AllReduceSum(buf []float32) error
	// Broadcast replaces buf on every rank with root's buf.
	Broadcast(buf []float32, root int) error
	// AllGather returns every rank's local, in rank order, on every rank.
	AllGather(local []byte) ([][]byte, error)
	// Barrier returns when every rank has called it.
	Barrier() error
	Close() error
}

// Single is the communicator of a job of one process, where every collective leaves its buffer as it is.
func Single() Communicator { return single{} }

type single struct{}

func (single) Rank() int                    { return 0 }
func (single) WorldSize() int               { return 1 }
func (single) AllReduceSum([]float32) error { return nil }
func (single) Barrier() error               { return nil }
func (single) Close() error                 { return nil }

func (single) Broadcast(_ []float32, root int) error { return checkRoot(root, 1) }

func (single) AllGather(local []byte) ([][]byte, error) {
	return [][]byte{append([]byte(nil), local...)}, nil
}

func checkRoot(root, world int) error {
	if root < 0 || root >= world {
		return fmt.Errorf("dist: Broadcast from rank %d, which is not a rank of this job of %d", root, world)
	}
	return nil
}
