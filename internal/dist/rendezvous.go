// This file connects the ranks: rank 0 listens, the others connect and introduce themselves, and rank 0
// answers all of them once every rank has arrived and agrees on the job.

package dist

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Default timeouts: ranks of one job may start minutes apart (image pulls, dataset checks), while a
// collective waits at most for the slowest rank's step.
const (
	DefaultJoinTimeout = 5 * time.Minute
	DefaultOpTimeout   = 60 * time.Second
)

// Options are what every rank passes to Rendezvous besides its Info.
type Options struct {
	// ConfigHash identifies the training config; ranks with different hashes are refused.
	ConfigHash string
	// Payload, set on rank 0, is delivered to every rank (the train command's start message: the NCCL
	// unique id, a resumed run's config); ignored elsewhere. It must fit in one frame (1 MiB).
	Payload []byte
	// JoinTimeout bounds the rendezvous: how long rank 0 waits for all ranks and the others for rank 0.
	JoinTimeout time.Duration
	// OpTimeout bounds each send and receive of a collective, so a dead or stuck peer becomes an error.
	OpTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.JoinTimeout <= 0 {
		o.JoinTimeout = DefaultJoinTimeout
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = DefaultOpTimeout
	}
	return o
}

// Group is the set of connections made by the rendezvous: on rank 0, one to every other rank; elsewhere,
// one to rank 0.
type Group struct {
	rank, world int
	payload     []byte
	peers       []*peer // indexed by rank on rank 0 (peers[0] nil); peers[0] is rank 0 elsewhere
	opTimeout   time.Duration
}

// Rank is this process's rank.
func (g *Group) Rank() int { return g.rank }

// WorldSize is the number of ranks.
func (g *Group) WorldSize() int { return g.world }

// Payload is what rank 0 passed as Options.Payload.
func (g *Group) Payload() []byte { return g.payload }

// Close closes the connections.
func (g *Group) Close() error {
	var first error
	for _, p := range g.peers {
		if p != nil {
			if err := p.conn.Close(); err != nil && first == nil && !errors.Is(err, net.ErrClosed) {
				first = err
			}
		}
	}
	return first
}

// Rendezvous connects this rank to the others: rank 0 listens on info.MasterPort on every interface, the
// others connect to info.Addr(), retrying until rank 0 is up or opts.JoinTimeout has passed. A world of
// one makes no connection.
func Rendezvous(info Info, opts Options) (*Group, error) {
	opts = opts.withDefaults()
	if info.WorldSize == 1 {
		return &Group{rank: 0, world: 1, payload: opts.Payload, opTimeout: opts.OpTimeout}, nil
	}
	if info.Rank != 0 {
		return join(info, opts)
	}
	ln, err := listen(":"+strconv.Itoa(info.MasterPort), info.portFrom())
	if err != nil {
		return nil, err
	}
	return serve(ln, info.WorldSize, opts)
}

// portFrom is Info.PortFrom, MASTER_PORT when unset.
func (in Info) portFrom() string {
	if in.PortFrom == "" {
		return "MASTER_PORT"
	}
	return in.PortFrom
}

// listen opens rank 0's port, saying which port is taken, and where it came from, when it is.
func listen(addr, from string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			_, port, _ := net.SplitHostPort(addr)
			return nil, fmt.Errorf("dist: rank 0 cannot listen on port %s (%s): the port is in use (another job?); choose a free port with MASTER_PORT, or RESNET_MASTER_PORT for this program's rendezvous alone", port, from)
		}
		return nil, fmt.Errorf("dist: rank 0 cannot listen on %s: %w", addr, err)
	}
	return ln, nil
}

// hello is what a rank tells rank 0 on arrival.
type hello struct {
	rank, world int
	hash        string
}

func (h hello) encode() []byte {
	b := make([]byte, 8, 8+len(h.hash))
	binary.LittleEndian.PutUint32(b, uint32(h.rank))
	binary.LittleEndian.PutUint32(b[4:], uint32(h.world))
	return append(b, h.hash...)
}

func decodeHello(b []byte) (hello, bool) {
	if len(b) < 8 {
		return hello{}, false
	}
	return hello{int(binary.LittleEndian.Uint32(b)), int(binary.LittleEndian.Uint32(b[4:])), string(b[8:])}, true
}

// arrival is a connection whose hello has been read.
type arrival struct {
	p     *peer
	hello hello
}

// serve is rank 0's side: it accepts connections on ln until every rank has arrived, checks each hello,
// and answers all ranks together, with the payload or with the error that ended the rendezvous. It closes
// ln before returning.
func serve(ln net.Listener, world int, opts Options) (*Group, error) {
	opts = opts.withDefaults()
	deadline := time.Now().Add(opts.JoinTimeout)
	arrivals := make(chan arrival)
	done := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	pending := map[net.Conn]bool{} // accepted, hello not yet taken by the loop below

	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			pending[conn] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := &peer{rank: -1, conn: conn}
				k, b, err := p.read(time.Until(deadline))
				mu.Lock()
				delete(pending, conn)
				mu.Unlock()
				h, ok := decodeHello(b)
				if err != nil || k != kindHello || !ok {
					conn.Close() // not one of ours, or gone before saying who it is
					return
				}
				p.rank = h.rank
				select {
				case arrivals <- arrival{p, h}:
				case <-done:
					conn.Close()
				}
			}()
		}
	}()

	g := &Group{rank: 0, world: world, payload: opts.Payload, peers: make([]*peer, world), opTimeout: opts.OpTimeout}
	err := collect(g, arrivals, deadline, opts)
	close(done)
	ln.Close()
	mu.Lock()
	for conn := range pending {
		conn.Close() // unblocks hello readers; arrived peers' connections are closed below or kept
	}
	mu.Unlock()
	wg.Wait()
	if err != nil {
		return nil, err
	}
	return g, nil
}

// collect takes arrivals until every rank is in, and then welcomes them; on a bad arrival or at the
// deadline it sends the error to every connected rank, closes their connections and returns it.
func collect(g *Group, arrivals <-chan arrival, deadline time.Time, opts Options) error {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	var err error
	for arrived := 1; arrived < g.world && err == nil; {
		select {
		case a := <-arrivals:
			if err = check(g, a.hello, opts); err != nil {
				a.p.write(kindError, []byte(err.Error()), opts.OpTimeout)
				a.p.conn.Close()
				break
			}
			g.peers[a.hello.rank] = a.p
			arrived++
		case <-timer.C:
			err = missingRanks(g, opts.JoinTimeout)
		}
	}
	kind, msg := kindWelcome, g.payload
	if err != nil {
		kind, msg = kindError, []byte(err.Error())
	}
	for _, p := range g.peers {
		if p == nil {
			continue
		}
		if werr := p.write(kind, msg, opts.OpTimeout); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		g.Close()
	}
	return err
}

// check refuses a rank that does not fit the job rank 0 is in.
func check(g *Group, h hello, opts Options) error {
	switch {
	case h.world != g.world:
		return fmt.Errorf("dist: rank %d has world size %d but rank 0 has %d; start every rank with the same WORLD_SIZE", h.rank, h.world, g.world)
	case h.rank <= 0 || h.rank >= g.world:
		return fmt.Errorf("dist: a process joined as rank %d, which is not a rank of this job (1 to %d besides rank 0); check RANK", h.rank, g.world-1)
	case g.peers[h.rank] != nil:
		return fmt.Errorf("dist: rank %d joined twice; each rank must be started once (check RANK or SLURM_PROCID)", h.rank)
	case h.hash != opts.ConfigHash:
		return fmt.Errorf("dist: rank %d has config hash %q but rank 0 has %q; start every rank with the same config", h.rank, h.hash, opts.ConfigHash)
	}
	return nil
}

func missingRanks(g *Group, timeout time.Duration) error {
	var missing, joined []string
	for r := 0; r < g.world; r++ {
		if r == 0 || g.peers[r] != nil {
			joined = append(joined, strconv.Itoa(r))
		} else {
			missing = append(missing, strconv.Itoa(r))
		}
	}
	noun := "rank"
	if len(missing) > 1 {
		noun = "ranks"
	}
	return fmt.Errorf("dist: %s %s did not join within %s (joined: %s); check that every rank was started and can reach rank 0's MASTER_ADDR and MASTER_PORT",
		noun, strings.Join(missing, ", "), timeout, strings.Join(joined, ", "))
}

// join is the side of every rank but 0: connect, say hello, and wait for rank 0's answer.
func join(info Info, opts Options) (*Group, error) {
	addr := info.Addr()
	conn, err := dial(addr, time.Now().Add(opts.JoinTimeout))
	if err != nil {
		return nil, fmt.Errorf("dist: rank %d could not connect to rank 0 at %s within %s: %v; check MASTER_ADDR and MASTER_PORT and that rank 0 was started", info.Rank, addr, opts.JoinTimeout, err)
	}
	p := &peer{rank: 0, conn: conn}
	h := hello{rank: info.Rank, world: info.WorldSize, hash: opts.ConfigHash}
	if err := p.write(kindHello, h.encode(), opts.OpTimeout); err != nil {
		conn.Close()
		return nil, err
	}
	// Rank 0 answers when the last rank arrives, at the latest its own join timeout after it started,
	// which was before this connection was accepted.
	payload, err := p.expect(kindWelcome, -1, opts.JoinTimeout+opts.OpTimeout)
	if err != nil {
		conn.Close()
		return nil, err
	}
	g := &Group{rank: info.Rank, world: info.WorldSize, payload: append([]byte(nil), payload...), peers: []*peer{p}, opTimeout: opts.OpTimeout}
	return g, nil
}

// dial connects to addr, retrying while nothing listens there yet, until deadline.
func dial(addr string, deadline time.Time) (net.Conn, error) {
	err := errors.New("timed out")
	for left := time.Until(deadline); left > 0; left = time.Until(deadline) {
		var conn net.Conn
		if conn, err = net.DialTimeout("tcp", addr, min(left, 10*time.Second)); err == nil {
			return conn, nil
		}
		time.Sleep(min(100*time.Millisecond, time.Until(deadline)))
	}
	return nil, err
}

// Loopback connects the world ranks of a job inside this process over the loopback interface, rank 0
// listening on a port the system picks: the ranks of a test that runs them as goroutines.
func Loopback(world int, opts Options) ([]*Group, error) {
	ln, err := listen("127.0.0.1:0", "a port the system picks")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	groups, errs := make([]*Group, world), make([]error, world)
	var wg sync.WaitGroup
	for r := 1; r < world; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			groups[r], errs[r] = join(Info{Rank: r, WorldSize: world, MasterAddr: "127.0.0.1", MasterPort: port}, opts.withDefaults())
		}()
	}
	groups[0], errs[0] = serve(ln, world, opts)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, g := range groups {
			if g != nil {
				g.Close()
			}
		}
		return nil, err
	}
	return groups, nil
}
