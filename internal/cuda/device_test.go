//go:build cuda

package cuda

// Tests of the device machinery itself: the command queue, the messages Open gives where something is
// missing, and the promises about steady-state training steps (no device allocation, the fused path).
// The tests that need a device skip without one; under -tags 'cuda kernelemu' they run on the emulator.

import (
	"errors"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"
	"unsafe"

	"resnet/internal/backend"
	"resnet/internal/model"
)

// The owner takes whatever is pending, spins, parks, and is woken by the next push: under a producer that
// alternates bursts with pauses long enough for it to park, every command arrives once and in order.
func TestQueueDeliversEveryCommandInOrder(t *testing.T) {
	var q queue
	q.init()
	const n = 50000
	got := make(chan []int64, 1)
	go func() {
		var seen []int64
		for {
			batch, quit := q.take()
			if quit {
				break
			}
			for i := range batch {
				seen = append(seen, batch[i].n)
			}
			q.recycle(batch)
		}
		got <- seen
	}()
	r := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		q.push(&cmd{kind: cmdSync, n: int64(i)})
		if r.IntN(500) == 0 {
			time.Sleep(time.Duration(r.IntN(300)) * time.Microsecond)
		}
	}
	q.close()
	seen := <-got
	if len(seen) != n {
		t.Fatalf("the owner saw %d commands, want %d", len(seen), n)
	}
	for i, v := range seen {
		if v != int64(i) {
			t.Fatalf("command %d arrived as number %d", i, v)
		}
	}
}

// Without a driver (this machine, CI) opening the device must say what is missing rather than crash.
func TestOpenSaysWhatIsMissing(t *testing.T) {
	if openHook != nil {
		t.Skip("the device is emulated")
	}
	d, err := Open(backend.Options{})
	if err == nil {
		t.Logf("opened %s", d.Describe())
		if err := d.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		return
	}
	msg := err.Error()
	known := []string{
		"cuda: libcuda.so.1 not found (no NVIDIA driver on this machine?)",
		"cuda: no CUDA device found",
		"cuda: libcudnn.so.9 not found; on the GPU machine source scripts/gpu-env.sh",
		"cuda: libcublas.so.13 (or .12) not found",
	}
	for _, k := range known {
		if strings.HasPrefix(msg, k) {
			t.Logf("Open: %v", err)
			return
		}
	}
	t.Fatalf("Open failed with %q, which names none of the expected causes", msg)
}

// testDevice opens the CUDA device (the emulator under kernelemu), skipping when there is none unless
// RESNET_REQUIRE_GPU=1.
func testDevice(t *testing.T, opt backend.Options) *Device {
	t.Helper()
	d, err := Open(opt)
	if err != nil {
		if os.Getenv("RESNET_REQUIRE_GPU") == "1" {
			t.Fatalf("no GPU: %v", err)
		}
		t.Skipf("no GPU: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return d
}

// After the first training step (which chooses convolution algorithms and fills the allocator's cache)
// a step must not allocate device memory, and it must run the path the device was opened for.
func TestSteadyStateTrainingStep(t *testing.T) {
	for _, unfused := range []bool{false, true} {
		name := "fused"
		if unfused {
			name = "unfused"
		}
		t.Run(name, func(t *testing.T) {
			d := testDevice(t, backend.Options{Unfused: unfused})
			spec, err := model.Lookup("cifar_resnet20")
			if err != nil {
				t.Fatal(err)
			}
			const batch = 4
			net, err := model.Build(d, spec, batch)
			if err != nil {
				t.Fatal(err)
			}
			defer net.Free()
			if err := net.Init(1); err != nil {
				t.Fatal(err)
			}
			c, h, w := net.InputShape()
			x := make([]float32, batch*c*h*w)
			r := rand.New(rand.NewPCG(3, 4))
			for i := range x {
				x[i] = float32(r.NormFloat64())
			}
			y := []int32{0, 3, 7, 9}
			step := func() {
				if _, err := net.TrainStep(x, y); err != nil {
					t.Fatal(err)
				}
				if err := d.SGDStep(backend.SGDParams{LR: 0.01, Momentum: 0.9}, net.SGDSlots(1e-4, true)); err != nil {
					t.Fatal(err)
				}
				if err := d.Sync(); err != nil {
					t.Fatal(err)
				}
			}
			step()
			before := d.MemStats()
			d.ResetLaunchCounts()
			step()
			step()
			after := d.MemStats()
			if after.DeviceAllocs != before.DeviceAllocs {
				t.Errorf("two steady-state steps called cuMemAlloc %d times", after.DeviceAllocs-before.DeviceAllocs)
			}
			if after.InUse != before.InUse {
				t.Errorf("device memory in use went from %d to %d bytes over two steps", before.InUse, after.InUse)
			}
			counts := d.LaunchCounts()
			own, other := FusedKernels, UnfusedKernels
			if unfused {
				own, other = UnfusedKernels, FusedKernels
			}
			ran := int64(0)
			for _, k := range own {
				ran += counts[k]
			}
			if ran == 0 {
				t.Errorf("no kernel of the %s path ran: %v", name, counts)
			}
			for _, k := range other {
				if counts[k] != 0 {
					t.Errorf("kernel %s of the other path ran %d times", k, counts[k])
				}
			}
			if counts["cudnnConvolutionForward"] == 0 || counts["cublasSgemm"] == 0 {
				t.Errorf("library calls are not counted: %v", counts)
			}
			if d.PeakBytes() <= 0 {
				t.Errorf("PeakBytes = %d", d.PeakBytes())
			}
		})
	}
}

// An error of queued work is returned by the next call, naming the op that queued it, and only once.
func TestQueuedErrorsAreReportedByTheNextCall(t *testing.T) {
	d := testDevice(t, backend.Options{})
	d.setAsyncErr("ConvForward", &Error{Call: "cudnnConvolutionForward(x)", Status: 3, Name: "CUDNN_STATUS_BAD_PARAM"})
	err := d.Sync()
	var e *Error
	if !errors.As(err, &e) || e.Op != "ConvForward" || !strings.Contains(err.Error(), "cuda: ConvForward: cudnnConvolutionForward(x): CUDNN_STATUS_BAD_PARAM") {
		t.Fatalf("Sync after a failed queued op returned %v", err)
	}
	if err := d.Sync(); err != nil {
		t.Fatalf("the error was reported twice: %v", err)
	}
}

// Pinned buffers are used without staging, and the caller may reuse them as soon as Upload returns.
func TestUploadFromPinnedMemory(t *testing.T) {
	d := testDevice(t, backend.Options{})
	const n = 1000
	p := d.PinnedFloat32s(n)
	if len(p) != n || !d.isPinned(unsafePointer(p), 4*n) {
		t.Fatalf("PinnedFloat32s(%d) returned %d values, pinned %v", n, len(p), len(p) == n && d.isPinned(unsafePointer(p), 4*n))
	}
	x, err := d.Alloc(backend.Shape{n}, backend.F32, backend.NCHW)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Free(x)
	for i := range p {
		p[i] = float32(i)
	}
	if err := d.Upload(x, p); err != nil {
		t.Fatal(err)
	}
	clear(p) // allowed once Upload has returned
	got := make([]float32, n)
	if err := d.Download(got, x); err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if v != float32(i) {
			t.Fatalf("element %d is %v after the pinned upload, want %d", i, v, i)
		}
	}
	d.FreePinned(p)
	if d.isPinned(unsafePointer(p), 4) {
		t.Fatal("FreePinned left the memory registered as pinned")
	}
}

func unsafePointer(s []float32) unsafe.Pointer { return unsafe.Pointer(&s[0]) }

// nullGPU accepts every command and computes nothing: it lets the host side of the device run without a
// GPU.
type nullGPU struct {
	next uint64
	host [][]byte
}

func (n *nullGPU) exec(c *cmd) error {
	if c.kind == cmdFunc || c.kind == cmdGraphCtl {
		return c.fn(n)
	}
	return nil
}

func (n *nullGPU) graphBegin() error           { return nil }
func (n *nullGPU) graphEnd(uint64, bool) error { return nil }
func (n *nullGPU) graphDestroy(uint64) error   { return nil }

// liveGraphs is how many recorded graphs the driver holds (tests).
func (dr *driver) liveGraphs() int { return len(dr.graphs) }

func (n *nullGPU) memAlloc(bytes int64) (uint64, error) {
	n.next += 1 << 40
	return n.next, nil
}

func (n *nullGPU) memFree([]uint64) error { return nil }

func (n *nullGPU) hostAlloc(bytes int64) (unsafe.Pointer, error) {
	b := make([]byte, bytes)
	n.host = append(n.host, b)
	return unsafe.Pointer(&b[0]), nil
}

func (n *nullGPU) hostFree(unsafe.Pointer) error { return nil }

func (n *nullGPU) memInfo() (free, total int64, err error) { return 0, 0, nil }

func (n *nullGPU) newConvPlan(g convGeom) (*convPlan, error) {
	return &convPlan{geom: g, algo: map[algoKey]*convAlgo{}}, nil
}

func (n *nullGPU) convCandidates(*convPlan, convDir, bool, uint64, uint64, uint64, int64) ([]convCandidate, error) {
	return []convCandidate{{ok: true, deterministic: true, math: mathFMA, ws: 1 << 20}}, nil
}

func (n *nullGPU) newConvAlgo(_ *convPlan, _ convDir, c convCandidate) (*convAlgo, error) {
	return &convAlgo{ws: c.ws}, nil
}

func (n *nullGPU) destroyConvPlan(*convPlan)                      {}
func (n *nullGPU) collectiveID() ([]byte, error)                  { return make([]byte, collectiveIDBytes), nil }
func (n *nullGPU) joinCollectives(uint64, []byte, int, int) error { return nil }
func (n *nullGPU) leaveCollectives(uint64, bool) error            { return nil }
func (n *nullGPU) close()                                         {}

// The host side of a steady-state training step (validation, launch packing, queueing, the caching
// allocator, staging) allocates nothing on the Go heap, on either path, nor with the step replayed as a
// graph.
func TestSteadyStateStepAllocatesNothingOnTheHost(t *testing.T) {
	for _, opt := range []backend.Options{{}, {Unfused: true}, {Graphs: true}} {
		d, err := newDevice(opt)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.start(func() (gpu, deviceInfo, error) {
			return &nullGPU{}, deviceInfo{name: "null", sms: 132, maxGridX: 1<<31 - 1, maxGridY: 65535, freeMem: 80 << 30}, nil
		}); err != nil {
			t.Fatal(err)
		}
		spec, err := model.Lookup("cifar_resnet20")
		if err != nil {
			t.Fatal(err)
		}
		net, err := model.Build(d, spec, 8)
		if err != nil {
			t.Fatal(err)
		}
		c, h, w := net.InputShape()
		x := make([]float32, 8*c*h*w)
		y := make([]int32, 8)
		slots := net.SGDSlots(1e-4, true)
		p := backend.SGDParams{LR: 0.1, Momentum: 0.9}
		step := func() {
			if _, err := net.TrainStep(x, y); err != nil {
				t.Fatal(err)
			}
			if err := d.SGDStep(p, slots); err != nil {
				t.Fatal(err)
			}
		}
		step()
		step()
		step() // with graphs: warm-up, recording, then replays
		if a := testing.AllocsPerRun(5, step); a != 0 {
			t.Errorf("%+v: a training step allocates %v times on the host", opt, a)
		}
		net.Free()
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// Options.Ordinal counts from the GPU RESNET_CUDA_DEVICE names, and the name says where the number came
// from (it is what the error of a GPU the machine lacks shows).
func TestDeviceOrdinal(t *testing.T) {
	for _, c := range []struct {
		ordinal int
		env     string
		want    int
		named   string
		err     string
	}{
		{0, "", 0, "GPU 0", ""},
		{3, "", 3, "GPU 3", ""},
		{0, "2", 2, "GPU 2 (RESNET_CUDA_DEVICE=2)", ""},
		{1, "2", 3, "GPU 3 (RESNET_CUDA_DEVICE=2 plus device ordinal 1)", ""},
		{0, "x", 0, "", `cuda: RESNET_CUDA_DEVICE="x" is not a device ordinal (0, 1, ...)`},
		{0, "-1", 0, "", `cuda: RESNET_CUDA_DEVICE="-1" is not a device ordinal (0, 1, ...)`},
		{-1, "", 0, "", "cuda: device ordinal -1 is negative"},
	} {
		got, named, err := deviceOrdinal(c.ordinal, c.env)
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if got != c.want || named != c.named || msg != c.err {
			t.Errorf("deviceOrdinal(%d, %q) = %d, %q, %q; want %d, %q, %q", c.ordinal, c.env, got, named, msg,
				c.want, c.named, c.err)
		}
	}
}
