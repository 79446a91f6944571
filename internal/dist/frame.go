// This file holds the wire format between ranks: frames of a kind byte, a little-endian uint32 length and
// that many bytes, each read and written under a deadline so that no call can block forever.

package dist

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// Frame kinds. A collective's frames carry its kind, so a rank that calls a different collective from
// rank 0 is found out instead of misreading the bytes.
const (
	kindHello byte = iota + 1
	kindWelcome
	kindError
	kindAllReduce
	kindBroadcast
	kindAllGather
	kindBarrier
)

var kindNames = map[byte]string{
	kindHello: "hello", kindWelcome: "welcome", kindError: "error", kindAllReduce: "AllReduceSum",
	kindBroadcast: "Broadcast", kindAllGather: "AllGather", kindBarrier: "Barrier",
}

// maxFrame bounds one frame's payload: collectives send large buffers as several frames, so memory stays
// bounded and a stray byte stream cannot make a rank allocate gigabytes.
const maxFrame = 1 << 20

// peer is the connection to one other rank.
type peer struct {
	rank int
	conn net.Conn
	hdr  [5]byte
	buf  []byte // the last frame read; reused
}

// write sends one frame, failing when it cannot be sent within timeout.
func (p *peer) write(kind byte, payload []byte, timeout time.Duration) error {
	if len(payload) > maxFrame {
		return fmt.Errorf("dist: frame of %d bytes exceeds the %d-byte limit", len(payload), maxFrame)
	}
	p.hdr[0] = kind
	binary.LittleEndian.PutUint32(p.hdr[1:], uint32(len(payload)))
	if err := p.conn.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return p.describe(err, timeout)
	}
	bufs := net.Buffers{p.hdr[:], payload}
	if _, err := bufs.WriteTo(p.conn); err != nil {
		return p.describe(err, timeout)
	}
	return nil
}

// read receives one frame; its payload stays valid until the next read from this peer.
func (p *peer) read(timeout time.Duration) (byte, []byte, error) {
	if err := p.conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return 0, nil, p.describe(err, timeout)
	}
	var hdr [5]byte
	if _, err := io.ReadFull(p.conn, hdr[:]); err != nil {
		return 0, nil, p.describe(err, timeout)
	}
	n := binary.LittleEndian.Uint32(hdr[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("dist: rank %d sent a frame of %d bytes, more than the %d-byte limit; is another program connected?", p.rank, n, maxFrame)
	}
	if cap(p.buf) < int(n) {
		p.buf = make([]byte, n)
	}
	p.buf = p.buf[:n]
	if _, err := io.ReadFull(p.conn, p.buf); err != nil {
		return 0, nil, p.describe(err, timeout)
	}
	return hdr[0], p.buf, nil
}

// expect reads one frame of the given kind and, when size >= 0, of that many bytes. An error frame from
// rank 0 becomes an error carrying its message.
func (p *peer) expect(kind byte, size int, timeout time.Duration) ([]byte, error) {
	k, b, err := p.read(timeout)
	if err != nil {
		return nil, err
	}
	switch {
	case k == kindError:
		return nil, &remoteError{msg: string(b)}
	case k != kind:
		return nil, fmt.Errorf("dist: rank %d called %s where this rank called %s; every rank must call the collectives in the same order", p.rank, kindNames[k], kindNames[kind])
	case size >= 0 && len(b) != size:
		return nil, fmt.Errorf("dist: rank %d sent %d bytes for %s where %d were expected; every rank must pass buffers of the same length", p.rank, len(b), kindNames[kind], size)
	}
	return b, nil
}

// remoteError is an error that rank 0 reported; it is returned as it came, since it already names the
// rank at fault.
type remoteError struct{ msg string }

func (e *remoteError) Error() string { return e.msg }

// peerLost marks an error where the peer's connection closed, as opposed to a timeout: when several ranks
// fail at once, the one whose process is gone is the one to name.
type peerLost struct{ error }

func (e peerLost) Unwrap() error { return e.error }

// describe turns a connection error into one naming the rank and what probably happened.
func (p *peer) describe(err error, timeout time.Duration) error {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("dist: rank %d did not answer within %s (is it stuck or much slower than the others?)", p.rank, timeout)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return peerLost{fmt.Errorf("dist: rank %d closed its connection (did its process exit?)", p.rank)}
	}
	return peerLost{fmt.Errorf("dist: connection to rank %d failed: %w", p.rank, err)}
}
