package dist

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// helperEnv selects what the test binary does when run as a worker of TestWorkerProcesses.
const helperEnv = "DIST_TEST_WORKER"

const processWorld, processValues = 3, 1000

var processOptions = Options{ConfigHash: "h", JoinTimeout: 10 * time.Second, OpTimeout: 2 * time.Second}

// TestWorkerMain is the worker: it finds its rank from the environment as a launcher would set it,
// joins, checks one all-reduce against the rank-order sum, says "ready", and then either waits to be
// killed ("hang") or runs a second all-reduce and prints its error ("reduce").
func TestWorkerMain(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("runs only as a worker of TestWorkerProcesses")
	}
	err := worker(mode)
	if err != nil {
		fmt.Println("error:", err)
	}
	os.Exit(0)
}

func worker(mode string) error {
	info, err := Discover(os.Getenv)
	if err != nil {
		return err
	}
	g, err := Rendezvous(info, processOptions)
	if err != nil {
		return err
	}
	c := NewCPU(g)
	defer c.Close()
	if err := checkedReduce(c); err != nil {
		return err
	}
	fmt.Println("ready")
	if mode == "hang" {
		time.Sleep(time.Minute)
	}
	return c.AllReduceSum(make([]float32, processValues))
}

// checkedReduce all-reduces the rank's data and compares the bits with the rank-order sum.
func checkedReduce(c *CPU) error {
	inputs := make([][]float32, c.WorldSize())
	for r := range inputs {
		inputs[r] = rankData(r, processValues)
	}
	buf := append([]float32(nil), inputs[c.Rank()]...)
	if err := c.AllReduceSum(buf); err != nil {
		return err
	}
	if !sameBits(buf, orderedSum(inputs, seq(c.WorldSize()))) {
		return fmt.Errorf("rank %d: the sum differs from the rank-order float32 sum", c.Rank())
	}
	return nil
}

// TestWorkerProcesses runs ranks 1 and 2 as processes of their own and rank 0 here; after a first
// all-reduce, rank 2 is killed, and ranks 0 and 1 must fail the next one, naming rank 2, well within
// their timeout.
func TestWorkerProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	ln, port := listenLoopback(t)
	start := func(rank int, mode string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestWorkerMain$")
		cmd.Env = append(os.Environ(), helperEnv+"="+mode, "RANK="+strconv.Itoa(rank), "LOCAL_RANK="+strconv.Itoa(rank),
			"WORLD_SIZE="+strconv.Itoa(processWorld), "MASTER_ADDR=127.0.0.1", "MASTER_PORT="+strconv.Itoa(port))
		return cmd
	}
	var out1 bytes.Buffer
	w1 := start(1, "reduce")
	w1.Stdout, w1.Stderr = &out1, &out1
	w2 := start(2, "hang")
	out2, err := w2.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []*exec.Cmd{w1, w2} {
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
	}
	defer w2.Process.Kill()
	defer w1.Process.Kill()

	g, err := serve(ln, processWorld, processOptions)
	if err != nil {
		t.Fatal(err)
	}
	c := NewCPU(g)
	defer c.Close()
	if err := checkedReduce(c); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out2).ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("rank 2 said %q (%v)", line, err)
	}
	w2.Process.Kill()
	w2.Wait()

	began := time.Now()
	err = c.AllReduceSum(make([]float32, processValues))
	want := "rank 2 closed its connection"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("rank 0: got %v, want an error containing %q", err, want)
	}
	if took := time.Since(began); took > processOptions.OpTimeout {
		t.Errorf("rank 0 took %s to fail, more than the %s timeout", took, processOptions.OpTimeout)
	}
	t.Logf("rank 0: %v", err)
	if err := w1.Wait(); err != nil {
		t.Fatalf("rank 1: %v\n%s", err, out1.String())
	}
	t.Logf("rank 1: %s", out1.String())
	if got := out1.String(); !strings.HasPrefix(got, "ready\nerror: ") || !strings.Contains(got, want) {
		t.Errorf("rank 1 printed %q, want its error to contain %q", got, want)
	}
}
