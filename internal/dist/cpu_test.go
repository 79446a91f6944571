package dist

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// startComms connects world ranks on loopback and returns their CPU communicators, closed at the end.
func startComms(t *testing.T, world int, opTimeout time.Duration) []*CPU {
	t.Helper()
	groups, errs := startRanks(t, world, seq(world), sameOptions(Options{ConfigHash: "h", JoinTimeout: 5 * time.Second, OpTimeout: opTimeout}))
	comms := make([]*CPU, world)
	for r := range groups {
		if errs[r] != nil {
			t.Fatalf("rank %d: %v", r, errs[r])
		}
		comms[r] = NewCPU(groups[r])
	}
	t.Cleanup(func() {
		for _, c := range comms {
			c.Close()
		}
	})
	return comms
}

// onEveryRank runs f for every rank at once and returns their errors.
func onEveryRank(comms []*CPU, f func(c *CPU) error) []error {
	errs := make([]error, len(comms))
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[r] = f(c)
		}()
	}
	wg.Wait()
	return errs
}

func noErrors(t *testing.T, errs []error) {
	t.Helper()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
}

// rankData is rank r's buffer: values over many magnitudes, so that the order of the additions shows in
// the bits of the sum.
func rankData(r, n int) []float32 {
	rng := rand.New(rand.NewPCG(uint64(r), 7))
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(7)-3)))
	}
	return v
}

// orderedSum adds the ranks' buffers in the order given, in float32.
func orderedSum(bufs [][]float32, order []int) []float32 {
	sum := append([]float32(nil), bufs[order[0]]...)
	for _, r := range order[1:] {
		for i, x := range bufs[r] {
			sum[i] += x
		}
	}
	return sum
}

func sameBits(a, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
}

func TestAllReduceSumInRankOrder(t *testing.T) {
	noLeaks(t)
	const world = 4
	n := 2*chunkFloats + 123 // three frames, the last one short
	comms := startComms(t, world, 5*time.Second)
	inputs := make([][]float32, world)
	for r := range inputs {
		inputs[r] = rankData(r, n)
	}
	want := orderedSum(inputs, []int{0, 1, 2, 3})
	if sameBits(want, orderedSum(inputs, []int{3, 2, 1, 0})) {
		t.Fatal("the test data sums to the same bits in any order; it cannot tell the orders apart")
	}
	for run := 0; run < 3; run++ {
		bufs := make([][]float32, world)
		for r := range bufs {
			bufs[r] = append([]float32(nil), inputs[r]...)
		}
		noErrors(t, onEveryRank(comms, func(c *CPU) error { return c.AllReduceSum(bufs[c.Rank()]) }))
		for r, b := range bufs {
			if !sameBits(b, want) {
				t.Fatalf("run %d, rank %d: the sum differs from the rank-order float32 sum", run, r)
			}
		}
	}
}

func TestBroadcast(t *testing.T) {
	noLeaks(t)
	const world = 3
	n := chunkFloats + 5
	comms := startComms(t, world, 5*time.Second)
	for _, root := range []int{0, 2} {
		bufs := make([][]float32, world)
		for r := range bufs {
			bufs[r] = rankData(r, n)
		}
		want := append([]float32(nil), bufs[root]...)
		noErrors(t, onEveryRank(comms, func(c *CPU) error { return c.Broadcast(bufs[c.Rank()], root) }))
		for r, b := range bufs {
			if !sameBits(b, want) {
				t.Errorf("root %d: rank %d does not hold the root's buffer", root, r)
			}
		}
	}
	if err := comms[0].Broadcast(nil, 3); err == nil || !strings.Contains(err.Error(), "Broadcast from rank 3, which is not a rank of this job of 3") {
		t.Errorf("got %v", err)
	}
}

func TestAllGatherInRankOrder(t *testing.T) {
	noLeaks(t)
	const world = 4
	comms := startComms(t, world, 5*time.Second)
	local := [][]byte{[]byte("zero"), bytes.Repeat([]byte{1, 2, 3}, maxFrame/3+7), nil, []byte("three")}
	got := make([][][]byte, world)
	noErrors(t, onEveryRank(comms, func(c *CPU) (err error) {
		got[c.Rank()], err = c.AllGather(local[c.Rank()])
		return err
	}))
	for r := range got {
		if len(got[r]) != world {
			t.Fatalf("rank %d got %d parts", r, len(got[r]))
		}
		for i, part := range got[r] {
			if !bytes.Equal(part, local[i]) {
				t.Errorf("rank %d, part %d: got %d bytes, want rank %d's %d", r, i, len(part), i, len(local[i]))
			}
		}
	}
}

func TestBarrier(t *testing.T) {
	noLeaks(t)
	comms := startComms(t, 3, 5*time.Second)
	var late time.Time
	returned := make([]time.Time, 3)
	noErrors(t, onEveryRank(comms, func(c *CPU) error {
		if c.Rank() == 1 {
			time.Sleep(200 * time.Millisecond)
			late = time.Now()
		}
		err := c.Barrier()
		returned[c.Rank()] = time.Now()
		return err
	}))
	for r, at := range returned {
		if at.Before(late) {
			t.Errorf("rank %d left the barrier before rank 1 reached it", r)
		}
	}
}

func TestSingle(t *testing.T) {
	for _, c := range []Communicator{Single(), NewCPU(&Group{world: 1, opTimeout: time.Second})} {
		buf := []float32{1, 2}
		parts, err := c.AllGather([]byte("x"))
		if c.AllReduceSum(buf) != nil || c.Broadcast(buf, 0) != nil || c.Barrier() != nil || err != nil {
			t.Fatalf("%T: a collective failed", c)
		}
		if buf[0] != 1 || buf[1] != 2 || len(parts) != 1 || string(parts[0]) != "x" || c.Rank() != 0 || c.WorldSize() != 1 {
			t.Errorf("%T: got buf %v, parts %q", c, buf, parts)
		}
		if c.Broadcast(buf, 1) == nil {
			t.Errorf("%T: Broadcast from rank 1 of 1 succeeded", c)
		}
		if c.Close() != nil {
			t.Errorf("%T: Close failed", c)
		}
	}
}

// failsNaming checks that every listed rank failed with an error containing want, and that later calls
// keep failing.
func failsNaming(t *testing.T, comms []*CPU, errs []error, ranks []int, want string) {
	t.Helper()
	for _, r := range ranks {
		if errs[r] == nil || !strings.Contains(errs[r].Error(), want) {
			t.Errorf("rank %d: error %v, want one containing %q", r, errs[r], want)
		}
		if err := comms[r].Barrier(); err == nil {
			t.Errorf("rank %d: a collective after a failure succeeded", r)
		}
	}
}

func TestMismatchedCollectives(t *testing.T) {
	noLeaks(t)
	comms := startComms(t, 3, 5*time.Second)
	errs := onEveryRank(comms, func(c *CPU) error {
		if c.Rank() == 2 {
			return c.Barrier()
		}
		return c.AllReduceSum(make([]float32, 10))
	})
	failsNaming(t, comms, errs, []int{0, 1, 2}, "rank 2 called Barrier where this rank called AllReduceSum")
}

func TestMismatchedLengths(t *testing.T) {
	noLeaks(t)
	comms := startComms(t, 2, 5*time.Second)
	errs := onEveryRank(comms, func(c *CPU) error { return c.AllReduceSum(make([]float32, 10+c.Rank())) })
	failsNaming(t, comms, errs, []int{0, 1}, "rank 1 sent 44 bytes for AllReduceSum where 40 were expected")
}

func TestClosedPeer(t *testing.T) {
	noLeaks(t)
	comms := startComms(t, 4, 5*time.Second)
	start := time.Now()
	errs := onEveryRank(comms, func(c *CPU) error {
		if c.Rank() == 2 {
			return c.Close()
		}
		return c.AllReduceSum(make([]float32, 1000))
	})
	failsNaming(t, comms, errs, []int{0, 1, 3}, "rank 2 closed its connection")
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the ranks took %s to fail", took)
	}
}

func TestStuckPeer(t *testing.T) {
	noLeaks(t)
	comms := startComms(t, 3, 300*time.Millisecond)
	start := time.Now()
	errs := onEveryRank(comms, func(c *CPU) error {
		if c.Rank() == 1 {
			time.Sleep(time.Second)
			return nil
		}
		return c.Barrier()
	})
	failsNaming(t, comms, errs, []int{0, 2}, "Barrier on rank 0: rank 1 did not answer within 300ms")
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Errorf("the ranks took %s to fail", took)
	}
}

func TestRankZeroGone(t *testing.T) {
	noLeaks(t)
	comms := startComms(t, 2, 5*time.Second)
	comms[0].Close()
	err := comms[1].AllReduceSum(make([]float32, 3))
	if err == nil || !strings.Contains(err.Error(), "AllReduceSum on rank 1: rank 0 closed its connection") {
		t.Errorf("got %v", err)
	}
}
