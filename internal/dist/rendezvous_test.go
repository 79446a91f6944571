package dist

import (
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// noLeaks fails the test when it ends with more goroutines than it started with.
func noLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		var now int
		for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			if now = runtime.NumGoroutine(); now <= before {
				return
			}
		}
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines at the start, %d at the end:\n%s", before, now, buf[:runtime.Stack(buf, true)])
	})
}

// freePort is a port nothing listens on at the moment.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// listenLoopback opens a listener for rank 0 on a port the system picks.
func listenLoopback(t *testing.T) (net.Listener, int) {
	t.Helper()
	ln, err := listen("127.0.0.1:0", "MASTER_PORT")
	if err != nil {
		t.Fatal(err)
	}
	return ln, ln.Addr().(*net.TCPAddr).Port
}

// startRanks runs the rendezvous of the given ranks of a world in goroutines on loopback, rank 0 on a
// port the system picks, and returns each rank's group and error (indexed like ranks).
func startRanks(t *testing.T, world int, ranks []int, opts func(i int) Options) ([]*Group, []error) {
	t.Helper()
	ln, port := listenLoopback(t)
	groups, errs := make([]*Group, len(ranks)), make([]error, len(ranks))
	var wg sync.WaitGroup
	for i, r := range ranks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r == 0 {
				groups[i], errs[i] = serve(ln, world, opts(i))
				return
			}
			info := Info{Rank: r, WorldSize: world, MasterAddr: "127.0.0.1", MasterPort: port}
			groups[i], errs[i] = Rendezvous(info, opts(i))
		}()
	}
	if !contains(ranks, 0) {
		ln.Close()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, g := range groups {
			if g != nil {
				g.Close()
			}
		}
	})
	return groups, errs
}

func contains(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func seq(n int) []int {
	r := make([]int, n)
	for i := range r {
		r[i] = i
	}
	return r
}

func sameOptions(o Options) func(int) Options { return func(int) Options { return o } }

func TestRendezvous(t *testing.T) {
	noLeaks(t)
	groups, errs := startRanks(t, 4, seq(4), func(i int) Options {
		o := Options{ConfigHash: "abc", JoinTimeout: 5 * time.Second}
		if i == 0 {
			o.Payload = []byte("unique id")
		}
		return o
	})
	for r, g := range groups {
		if errs[r] != nil {
			t.Fatalf("rank %d: %v", r, errs[r])
		}
		if g.Rank() != r || g.WorldSize() != 4 || string(g.Payload()) != "unique id" {
			t.Errorf("rank %d: got rank %d, world %d, payload %q", r, g.Rank(), g.WorldSize(), g.Payload())
		}
	}
}

func TestRendezvousSingle(t *testing.T) {
	g, err := Rendezvous(Info{WorldSize: 1}, Options{Payload: []byte("x")})
	if err != nil || g.WorldSize() != 1 || string(g.Payload()) != "x" {
		t.Fatalf("got %+v, %v", g, err)
	}
}

// wantErrors checks that each listed rank's error contains want.
func wantErrors(t *testing.T, errs []error, which []int, want string) {
	t.Helper()
	for _, i := range which {
		if errs[i] == nil || !strings.Contains(errs[i].Error(), want) {
			t.Errorf("rank at %d: error %v, want one containing %q", i, errs[i], want)
		}
	}
}

func TestRendezvousConfigHashMismatch(t *testing.T) {
	noLeaks(t)
	_, errs := startRanks(t, 2, seq(2), func(i int) Options {
		return Options{ConfigHash: []string{"aaa", "bbb"}[i], JoinTimeout: 5 * time.Second}
	})
	wantErrors(t, errs, []int{0, 1}, `dist: rank 1 has config hash "bbb" but rank 0 has "aaa"; start every rank with the same config`)
}

func TestRendezvousWrongWorldSize(t *testing.T) {
	noLeaks(t)
	ln, port := listenLoopback(t)
	var err0 error
	done := make(chan struct{})
	go func() { _, err0 = serve(ln, 2, Options{JoinTimeout: 5 * time.Second}); close(done) }()
	_, err1 := Rendezvous(Info{Rank: 1, WorldSize: 3, MasterAddr: "127.0.0.1", MasterPort: port}, Options{JoinTimeout: 5 * time.Second})
	<-done
	wantErrors(t, []error{err0, err1}, []int{0, 1}, "dist: rank 1 has world size 3 but rank 0 has 2")
}

func TestRendezvousDuplicateRank(t *testing.T) {
	noLeaks(t)
	// Rank 2 never comes, so rank 0 is still waiting when the second rank 1 arrives.
	_, errs := startRanks(t, 3, []int{0, 1, 1}, sameOptions(Options{JoinTimeout: 5 * time.Second}))
	wantErrors(t, errs, []int{0, 1, 2}, "dist: rank 1 joined twice")
}

func TestRendezvousMissingRank(t *testing.T) {
	noLeaks(t)
	start := time.Now()
	_, errs := startRanks(t, 5, []int{0, 1, 4}, func(i int) Options {
		if i == 0 {
			return Options{JoinTimeout: 500 * time.Millisecond}
		}
		return Options{JoinTimeout: 5 * time.Second}
	})
	wantErrors(t, errs, []int{0, 1, 2}, "dist: ranks 2, 3 did not join within 500ms (joined: 0, 1, 4)")
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the ranks took %s to fail", took)
	}
}

func TestRendezvousPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	_, err = Rendezvous(Info{Rank: 0, WorldSize: 2, MasterAddr: "127.0.0.1", MasterPort: port}, Options{})
	want := fmt.Sprintf("dist: rank 0 cannot listen on port %d (MASTER_PORT): the port is in use", port)
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got %v, want an error starting %q", err, want)
	}
	_, err = Rendezvous(Info{Rank: 0, WorldSize: 2, MasterAddr: "127.0.0.1", MasterPort: port, PortFrom: "MASTER_PORT+1"}, Options{})
	want = fmt.Sprintf("dist: rank 0 cannot listen on port %d (MASTER_PORT+1): the port is in use", port)
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got %v, want an error starting %q", err, want)
	}
}

func TestRendezvousNoMaster(t *testing.T) {
	port := freePort(t)
	_, err := Rendezvous(Info{Rank: 1, WorldSize: 2, MasterAddr: "127.0.0.1", MasterPort: port}, Options{JoinTimeout: 300 * time.Millisecond})
	want := "dist: rank 1 could not connect to rank 0 at 127.0.0.1:" + strconv.Itoa(port) + " within 300ms"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got %v, want an error starting %q", err, want)
	}
}

// A connection that is not a rank (a port scanner, a health check) is dropped without ending the
// rendezvous.
func TestRendezvousIgnoresStrangers(t *testing.T) {
	noLeaks(t)
	ln, port := listenLoopback(t)
	stranger, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	stranger.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	var g0 *Group
	var err0 error
	done := make(chan struct{})
	go func() { g0, err0 = serve(ln, 2, Options{JoinTimeout: 5 * time.Second}); close(done) }()
	g1, err1 := Rendezvous(Info{Rank: 1, WorldSize: 2, MasterAddr: "127.0.0.1", MasterPort: port}, Options{JoinTimeout: 5 * time.Second})
	<-done
	if err0 != nil || err1 != nil {
		t.Fatal(err0, err1)
	}
	g0.Close()
	g1.Close()
}
