//go:build cuda

package cuda

// The collectives of a group of one rank on one GPU (the kernel emulator runs these too: among one rank a
// sum and a broadcast change nothing), their operand checks, and a group of two ranks in two processes on
// a machine with two GPUs or more.

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"resnet/internal/backend"
)

// joinAlone joins a group of one rank on d, closing it at the end of the test.
func joinAlone(t *testing.T, d *Device) backend.Collectives {
	t.Helper()
	id, err := d.NewCollectiveID()
	mustOK(t, err)
	if len(id) != collectiveIDBytes {
		t.Fatalf("NewCollectiveID returned %d bytes, want %d", len(id), collectiveIDBytes)
	}
	c, err := d.JoinCollectives(id, 0, 1)
	mustOK(t, err)
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// With one rank the sum over ranks is the values themselves, bit for bit; values outside the range are
// not touched, and a broadcast from rank 0 leaves the tensor as it is.
func TestCollectivesOneRank(t *testing.T) {
	d := openGPU(t, backend.Options{})
	c := joinAlone(t, d)
	const n = 1000
	x, err := d.Alloc(backend.Shape{10, 100}, backend.F32, backend.NCHW)
	mustOK(t, err)
	defer d.Free(x)
	want := uniformValues(seededRand(31), n, -3, 3)
	mustOK(t, d.Upload(x, want))
	mustOK(t, c.AllReduceSum(x, 100, 300))
	mustOK(t, c.AllReduceSum(x, n, 0))
	got := make([]float32, n)
	mustOK(t, d.Download(got, x))
	if i := firstDifference(got, want); i >= 0 {
		t.Fatalf("after AllReduceSum of [100, 400): value %d is %v, want %v", i, got[i], want[i])
	}
	part := x
	part.Shape, part.Off = backend.Shape{50}, 7
	mustOK(t, c.Broadcast(part, 0))
	mustOK(t, c.Broadcast(x, 0))
	mustOK(t, d.Download(got, x))
	if i := firstDifference(got, want); i >= 0 {
		t.Fatalf("after Broadcast: value %d is %v, want %v", i, got[i], want[i])
	}
	mustOK(t, d.Sync())
	if v := d.Environment()["nccl_version"]; v == "" && openHook == nil {
		t.Error("the device joined a group but reports no nccl_version")
	}
}

// Bad operands are refused with the errors of the checks in internal/backend (and the id's size with the
// device's own), before anything is queued; a closed group refuses everything and closes twice quietly.
func TestCollectivesOperandChecks(t *testing.T) {
	d := openGPU(t, backend.Options{})
	if _, err := d.JoinCollectives(make([]byte, 16), 0, 1); err == nil ||
		err.Error() != "cuda: JoinCollectives: the group id has 16 bytes; an NCCL id (from NewCollectiveID) has 128" {
		t.Errorf("JoinCollectives with a 16-byte id: %v", err)
	}
	if _, err := d.JoinCollectives(make([]byte, collectiveIDBytes), 1, 1); err == nil ||
		err.Error() != "cuda: JoinCollectives: rank 1 is not one of the group's 1 ranks (0..0)" {
		t.Errorf("JoinCollectives as rank 1 of 1: %v", err)
	}
	id, err := d.NewCollectiveID()
	mustOK(t, err)
	c, err := d.JoinCollectives(id, 0, 1)
	mustOK(t, err)
	x, err := d.Alloc(backend.Shape{8}, backend.F32, backend.NCHW)
	mustOK(t, err)
	defer d.Free(x)
	labels, err := d.Alloc(backend.Shape{8}, backend.I32, backend.NCHW)
	mustOK(t, err)
	defer d.Free(labels)
	for _, k := range []struct {
		what string
		err  error
		want string
	}{
		{"past the end", c.AllReduceSum(x, 4, 5), "cuda: AllReduceSum: values [4, 9) are not inside t [8], which holds 8"},
		{"int32", c.AllReduceSum(labels, 0, 8), "cuda: AllReduceSum: t is i32, want f32"},
		{"root 1 of 1", c.Broadcast(x, 1), "cuda: Broadcast: root 1 is not one of the group's 1 ranks (0..0)"},
	} {
		if k.err == nil || k.err.Error() != k.want {
			t.Errorf("%s: error %v, want %q", k.what, k.err, k.want)
		}
	}
	mustOK(t, c.Close())
	mustOK(t, c.Close())
	const closed = "cuda: AllReduceSum: the collective group was closed"
	if err := c.AllReduceSum(x, 0, 8); err == nil || err.Error() != closed {
		t.Errorf("AllReduceSum after Close: %v, want %q", err, closed)
	}
	mustOK(t, d.Sync())
}

// Environment of the two-rank test's worker processes.
const (
	envCollRank = "RESNET_TEST_COLLECTIVE_RANK"
	envCollID   = "RESNET_TEST_COLLECTIVE_ID"
)

// Two ranks, each a process of this test binary on its own GPU (0 and 1): each holds (rank+1) * v for the
// same v, and the all-reduced range must hold 3 * v exactly (one addition of floats whose sum is exact,
// as v has few significant bits), the rest its own values; then a broadcast from rank 1 gives both rank
// 1's values. Skipped with fewer than two GPUs, even under RESNET_REQUIRE_GPU=1.
func TestCollectivesTwoRanks(t *testing.T) {
	if r := os.Getenv(envCollRank); r != "" {
		collectiveWorker(t, r, os.Getenv(envCollID))
		return
	}
	if openHook != nil {
		t.Skip("the kernel emulator has groups of one rank only")
	}
	d := openGPU(t, backend.Options{})
	if n, err := gpuCount(); err != nil || n < 2 {
		t.Skipf("two ranks need two GPUs; this machine has %d (%v)", n, err)
	}
	// The process that makes the id runs the rendezvous, so this one does, and stays until both joined.
	id, err := d.NewCollectiveID()
	mustOK(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	outs := make([]strings.Builder, 2)
	cmds := make([]*exec.Cmd, 2)
	for r := range cmds {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCollectivesTwoRanks$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), envCollRank+"="+strconv.Itoa(r), envCollID+"="+hex.EncodeToString(id))
		cmd.Stdout, cmd.Stderr = &outs[r], &outs[r]
		mustOK(t, cmd.Start())
		cmds[r] = cmd
	}
	for r, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("rank %d: %v\n%s", r, err, outs[r].String())
		} else if !strings.Contains(outs[r].String(), "rank "+strconv.Itoa(r)+" of 2: sum and broadcast right") {
			t.Errorf("rank %d passed without checking:\n%s", r, outs[r].String())
		}
	}
}

// collectiveWorker is one rank of TestCollectivesTwoRanks.
func collectiveWorker(t *testing.T, rankEnv, idHex string) {
	rank, err := strconv.Atoi(rankEnv)
	mustOK(t, err)
	id, err := hex.DecodeString(idHex)
	mustOK(t, err)
	d := openGPU(t, backend.Options{Ordinal: rank})
	c, err := d.JoinCollectives(id, rank, 2)
	mustOK(t, err)
	defer func() { mustOK(t, c.Close()) }()
	const n, offset, count = 4096, 1000, 2000
	base := make([]float32, n)
	for i := range base {
		base[i] = float32(i%97) * 0.25
	}
	mine := make([]float32, n)
	for i, v := range base {
		mine[i] = float32(rank+1) * v
	}
	x, err := d.Alloc(backend.Shape{n}, backend.F32, backend.NCHW)
	mustOK(t, err)
	defer d.Free(x)
	mustOK(t, d.Upload(x, mine))
	mustOK(t, c.AllReduceSum(x, offset, count))
	got := make([]float32, n)
	mustOK(t, d.Download(got, x))
	want := slices.Clone(mine)
	for i := offset; i < offset+count; i++ {
		want[i] = 3 * base[i]
	}
	if i := firstDifference(got, want); i >= 0 {
		t.Fatalf("rank %d: after AllReduceSum of [%d, %d): value %d is %v, want %v", rank, offset, offset+count, i, got[i], want[i])
	}
	// Rank 1's values: 2*base, with the reduced range 3*base.
	mustOK(t, c.Broadcast(x, 1))
	mustOK(t, d.Download(got, x))
	for i, v := range base {
		want[i] = 2 * v
		if i >= offset && i < offset+count {
			want[i] = 3 * v
		}
	}
	if i := firstDifference(got, want); i >= 0 {
		t.Fatalf("rank %d: after Broadcast from rank 1: value %d is %v, want %v", rank, i, got[i], want[i])
	}
	fmt.Printf("rank %d of 2: sum and broadcast right\n", rank)
}
