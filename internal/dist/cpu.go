// This file holds the CPU communicator: collectives over the rendezvous connections, every one passing
// through rank 0, which sums in rank order so that the result is the same bits on every rank and in every
// run.

package dist

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"
)

// chunkFloats is how many float32 values one frame carries; large buffers travel as many frames, so
// rank 0 holds at most one frame per rank at a time.
const chunkFloats = maxFrame / 4

// maxGather bounds one rank's AllGather contribution.
const maxGather = 1 << 30

var errClosed = errors.New("dist: the communicator is closed")

// CPU is a Communicator over a Group's TCP connections, arranged in a star around rank 0. It is safe for
// use by several goroutines; their collectives run one at a time.
type CPU struct {
	g   *Group
	mu  sync.Mutex
	err error  // the first failure; every later call returns it
	out []byte // encoding buffer for one frame
}

var _ Communicator = (*CPU)(nil)

// NewCPU makes a communicator of g, which it owns from then on.
func NewCPU(g *Group) *CPU { return &CPU{g: g} }

// Rank is this process's rank.
func (c *CPU) Rank() int { return c.g.rank }

// WorldSize is the number of ranks.
func (c *CPU) WorldSize() int { return c.g.world }

// Close closes the connections. Ranks still in a collective with this one get an error naming it.
func (c *CPU) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == errClosed {
		return nil
	}
	c.err = errClosed
	return c.g.Close()
}

// run runs one collective unless the communicator is broken, and breaks it when the collective fails.
func (c *CPU) run(kind byte, collective func() error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	if c.g.world == 1 {
		return nil
	}
	if c.out == nil {
		c.out = make([]byte, maxFrame)
	}
	if err := collective(); err != nil {
		c.fail(kind, err)
		return c.err
	}
	return nil
}

// fail records err and closes the connections. Rank 0 first tells every other rank what went wrong, so
// that they fail at once with an error naming the rank at fault instead of waiting for their deadline.
func (c *CPU) fail(kind byte, err error) {
	var remote *remoteError
	if errors.As(err, &remote) {
		c.err = err // rank 0's own account, already naming the rank at fault
	} else {
		c.err = fmt.Errorf("dist: %s on rank %d: %s", kindNames[kind], c.g.rank, strings.TrimPrefix(err.Error(), "dist: "))
	}
	if c.g.rank == 0 {
		msg := []byte(c.err.Error())
		c.eachPeer(func(p *peer) error { return p.write(kindError, msg, time.Second) })
	}
	c.g.Close()
}

// replyTimeout is how long a rank other than 0 waits for rank 0's answer: longer than rank 0 waits for
// any rank, so that when a rank is stuck, rank 0 is the one to time out and it names that rank.
func (c *CPU) replyTimeout() time.Duration { return 2 * c.g.opTimeout }

// eachPeer runs f on the connection to every other rank at once (on rank 0) or to rank 0, and waits for
// all. Of several errors it returns the one of the lowest rank whose connection closed, since that rank's
// loss is what made others time out, else that of the lowest rank.
func (c *CPU) eachPeer(f func(p *peer) error) error {
	errs := make([]error, len(c.g.peers))
	var wg sync.WaitGroup
	for i, p := range c.g.peers {
		if p == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(p)
		}()
	}
	wg.Wait()
	var first error
	for _, err := range errs {
		var lost peerLost
		if errors.As(err, &lost) {
			return err
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// AllReduceSum replaces buf with the sum over ranks, added in rank order (0, 1, 2, ...) in float32.
func (c *CPU) AllReduceSum(buf []float32) error {
	return c.run(kindAllReduce, func() error {
		for off := 0; off < len(buf); off += chunkFloats {
			if err := c.reduceChunk(buf[off:min(off+chunkFloats, len(buf))]); err != nil {
				return err
			}
		}
		return nil
	})
}

func (c *CPU) reduceChunk(part []float32) error {
	n := 4 * len(part)
	if c.g.rank != 0 {
		p := c.g.peers[0]
		if err := p.write(kindAllReduce, encodeFloats(c.out, part), c.g.opTimeout); err != nil {
			return err
		}
		b, err := p.expect(kindAllReduce, n, c.replyTimeout())
		if err != nil {
			return err
		}
		decodeFloats(part, b)
		return nil
	}
	if err := c.eachPeer(func(p *peer) error { _, err := p.expect(kindAllReduce, n, c.g.opTimeout); return err }); err != nil {
		return err
	}
	for _, p := range c.g.peers[1:] {
		addFloats(part, p.buf)
	}
	sum := encodeFloats(c.out, part)
	return c.eachPeer(func(p *peer) error { return p.write(kindAllReduce, sum, c.g.opTimeout) })
}

// Broadcast replaces buf on every rank with root's. A root other than 0 sends to rank 0, which forwards.
func (c *CPU) Broadcast(buf []float32, root int) error {
	if err := checkRoot(root, c.g.world); err != nil {
		return err
	}
	return c.run(kindBroadcast, func() error {
		for off := 0; off < len(buf); off += chunkFloats {
			if err := c.broadcastChunk(buf[off:min(off+chunkFloats, len(buf))], root); err != nil {
				return err
			}
		}
		return nil
	})
}

func (c *CPU) broadcastChunk(part []float32, root int) error {
	n := 4 * len(part)
	switch {
	case c.g.rank == root && root != 0:
		return c.g.peers[0].write(kindBroadcast, encodeFloats(c.out, part), c.g.opTimeout)
	case c.g.rank != 0:
		b, err := c.g.peers[0].expect(kindBroadcast, n, c.replyTimeout())
		if err != nil {
			return err
		}
		decodeFloats(part, b)
		return nil
	}
	data := encodeFloats(c.out, part)
	if root != 0 {
		b, err := c.g.peers[root].expect(kindBroadcast, n, c.g.opTimeout)
		if err != nil {
			return err
		}
		decodeFloats(part, b)
		data = b
	}
	return c.eachPeer(func(p *peer) error {
		if p.rank == root {
			return nil
		}
		return p.write(kindBroadcast, data, c.g.opTimeout)
	})
}

// AllGather returns every rank's local, in rank order, on every rank. The lengths may differ by rank.
func (c *CPU) AllGather(local []byte) ([][]byte, error) {
	parts := make([][]byte, c.g.world)
	parts[c.g.rank] = append([]byte(nil), local...)
	err := c.run(kindAllGather, func() error {
		if c.g.rank != 0 {
			p := c.g.peers[0]
			if err := sendMessage(p, kindAllGather, local, c.g.opTimeout); err != nil {
				return err
			}
			for r := range parts {
				b, err := readMessage(p, kindAllGather, c.replyTimeout())
				if err != nil {
					return err
				}
				parts[r] = b
			}
			return nil
		}
		if err := c.eachPeer(func(p *peer) error {
			b, err := readMessage(p, kindAllGather, c.g.opTimeout)
			parts[p.rank] = b
			return err
		}); err != nil {
			return err
		}
		return c.eachPeer(func(p *peer) error {
			for _, b := range parts {
				if err := sendMessage(p, kindAllGather, b, c.g.opTimeout); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return parts, nil
}

// Barrier returns when every rank has called it.
func (c *CPU) Barrier() error {
	return c.run(kindBarrier, func() error {
		if c.g.rank != 0 {
			if err := c.g.peers[0].write(kindBarrier, nil, c.g.opTimeout); err != nil {
				return err
			}
			_, err := c.g.peers[0].expect(kindBarrier, 0, c.replyTimeout())
			return err
		}
		if err := c.eachPeer(func(p *peer) error { _, err := p.expect(kindBarrier, 0, c.g.opTimeout); return err }); err != nil {
			return err
		}
		return c.eachPeer(func(p *peer) error { return p.write(kindBarrier, nil, c.g.opTimeout) })
	})
}

// sendMessage sends bytes of any length: a frame with the length, then frames of at most maxFrame bytes.
func sendMessage(p *peer, kind byte, b []byte, timeout time.Duration) error {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(b)))
	if err := p.write(kind, n[:], timeout); err != nil {
		return err
	}
	for off := 0; off < len(b); off += maxFrame {
		if err := p.write(kind, b[off:min(off+maxFrame, len(b))], timeout); err != nil {
			return err
		}
	}
	return nil
}

// readMessage receives what sendMessage sent, in a new slice.
func readMessage(p *peer, kind byte, timeout time.Duration) ([]byte, error) {
	h, err := p.expect(kind, 8, timeout)
	if err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint64(h)
	if n > maxGather {
		return nil, fmt.Errorf("dist: rank %d sent %d bytes to gather, more than the %d-byte limit", p.rank, n, maxGather)
	}
	b := make([]byte, 0, n)
	for uint64(len(b)) < n {
		f, err := p.expect(kind, min(maxFrame, int(n)-len(b)), timeout)
		if err != nil {
			return nil, err
		}
		b = append(b, f...)
	}
	return b, nil
}

// encodeFloats writes v little-endian into dst and returns the bytes written.
func encodeFloats(dst []byte, v []float32) []byte {
	for i, x := range v {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(x))
	}
	return dst[:4*len(v)]
}

func decodeFloats(dst []float32, b []byte) {
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
}

// addFloats adds the little-endian values in b to acc, one float32 rounding per element.
func addFloats(acc []float32, b []byte) {
	for i := range acc {
		acc[i] += math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
}
