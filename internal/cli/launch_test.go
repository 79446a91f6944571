package cli

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"resnet/internal/backend"
	"resnet/internal/cpu"
	"resnet/internal/safetensors"
	"resnet/internal/train"
)

// tinyTrainArgs train the demo's ResNet-8 for a few steps of a global batch of 16.
func tinyTrainArgs(out string, epochs int, extra ...string) []string {
	args := []string{"train", "--config", "demo", "--out", out, "--device", "cpu", "--epochs", strconv.Itoa(epochs),
		"--set", "dataset.train_size=64", "--set", "dataset.test_size=40", "--set", "train.batch_size=16",
		"--set", "eval.batch_size=16", "--set", "train.log_every=1", "--set", "dataset.workers=1"}
	return append(args, extra...)
}

// startCLI runs the test binary as the resnet program (see TestMain) with args.
func startCLI(t *testing.T, args []string, env ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), "RESNET_CLI_CHILD=1", "RESNET_DIST_TIMEOUT=60s"), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	return cmd, &stderr
}

// runWatching runs cmd, handing each line of its output to onLine as it comes, and returns the output and
// the command's exit.
func runWatching(t *testing.T, cmd *exec.Cmd, onLine func(string)) (string, error) {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var log strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		onLine(sc.Text())
	}
	return log.String(), cmd.Wait()
}

// sameWeights compares the newest checkpoints of two runs bit for bit, but for the BN running statistics.
func sameWeights(t *testing.T, dirA, dirB string) {
	t.Helper()
	var files [2]*safetensors.File
	for i, dir := range []string{dirA, dirB} {
		path, err := train.FindCheckpoint(dir)
		if err != nil {
			t.Fatal(err)
		}
		if files[i], err = safetensors.ReadFile(path); err != nil {
			t.Fatal(err)
		}
	}
	for _, wt := range files[0].Tensors {
		if strings.Contains(wt.Name, "running_") || strings.Contains(wt.Name, "num_batches_tracked") {
			continue
		}
		if gt, ok := files[1].Get(wt.Name); !ok || !bytes.Equal(gt.Data, wt.Data) {
			t.Errorf("tensor %s differs between %s and %s", wt.Name, filepath.Base(dirA), filepath.Base(dirB))
		}
	}
}

// --nproc-per-node 2 runs the command as two worker processes, and they train as one process that
// accumulates the same global batch in two micro-batches: the same weights and momentum buffers, bit for
// bit (the BN running statistics are rank 0's share's; see internal/train's
// TestTwoRanksTrainAsOneProcessAccumulating). Only rank 0 prints.
func TestLauncherRunsTwoWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	root := t.TempDir()
	two := filepath.Join(root, "two")
	cmd, stderr := startCLI(t, tinyTrainArgs(two, 1, "--nproc-per-node", "2"))
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Run(); err != nil {
		t.Fatalf("launcher: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	if strings.Count(out, "training cifar_resnet8 on ") != 1 || !strings.Contains(out, "2 ranks (--nproc-per-node)") || strings.Count(out, "done: ") != 1 {
		t.Errorf("the job's output is not rank 0's alone:\n%s", out)
	}
	if stderr.Len() > 0 {
		t.Errorf("the job wrote to stderr:\n%s", stderr.String())
	}

	one := filepath.Join(root, "one")
	if code, out, errOut := runCLI(t, tinyTrainArgs(one, 1, "--set", "train.accumulate_steps=2")...); code != 0 {
		t.Fatalf("one process: exit %d\n%s%s", code, out, errOut)
	}
	sameWeights(t, one, two)
}

// SIGINT to the launcher reaches every worker once; rank 0 decides, and all stop after the same step,
// rank 0 writing the checkpoint, with exit code 130. The run then continues in one process (accumulating
// two micro-batches) to the weights of a run of one process throughout.
func TestLauncherForwardsSIGINTAndResumesInOneProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	root := t.TempDir()
	one := filepath.Join(root, "one")
	if code, out, errOut := runCLI(t, tinyTrainArgs(one, 2, "--set", "train.accumulate_steps=2")...); code != 0 {
		t.Fatalf("one process: exit %d\n%s%s", code, out, errOut)
	}
	two := filepath.Join(root, "two")
	cmd, stderr := startCLI(t, tinyTrainArgs(two, 2, "--nproc-per-node", "2"))
	signalled := false
	log, err := runWatching(t, cmd, func(line string) {
		if !signalled && strings.Contains(line, "epoch 1/2 step 2 ") {
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Error(err)
			}
			signalled = true
		}
	})
	exitErr, ok := err.(*exec.ExitError)
	if !signalled || !ok || exitErr.ExitCode() != exitInterrupted {
		t.Fatalf("the interrupted job ended with %v, want exit %d\n%s%s", err, exitInterrupted, log, stderr.String())
	}
	if !strings.Contains(log, "interrupted: checkpoint written to ") || strings.Contains(stderr.String(), "[rank 1]") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", log, stderr.String())
	}
	if code, out, errOut := runCLI(t, "train", "--resume", two, "--set", "train.accumulate_steps=2"); code != 0 {
		t.Fatalf("resume in one process: exit %d\n%s%s", code, out, errOut)
	}
	sameWeights(t, one, two)
}

// pidOfRank finds the worker of the given rank among the children of the launcher (Linux's /proc).
func pidOfRank(t *testing.T, launcher, rank int) int {
	t.Helper()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, s := range stats {
		b, err := os.ReadFile(s)
		if err != nil {
			continue
		}
		fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(fields) < 2 || fields[1] != strconv.Itoa(launcher) {
			continue
		}
		dir := filepath.Dir(s)
		env, err := os.ReadFile(filepath.Join(dir, "environ"))
		if err == nil && bytes.Contains(env, []byte("\x00RANK="+strconv.Itoa(rank)+"\x00")) {
			pid, _ := strconv.Atoi(filepath.Base(dir))
			return pid
		}
	}
	return 0
}

// A worker that dies stops the job: the launcher stops the other workers and exits with an error naming
// the rank, well within the dist timeout, and the checkpoint of the epoch before stays intact.
func TestLauncherStopsTheJobWhenAWorkerDies(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	if _, err := os.Stat("/proc/self/environ"); err != nil {
		t.Skip("finds the workers through /proc")
	}
	dir := filepath.Join(t.TempDir(), "run")
	cmd, stderr := startCLI(t, tinyTrainArgs(dir, 100, "--nproc-per-node", "2"))
	var killedAt time.Time
	log, err := runWatching(t, cmd, func(line string) {
		if killedAt.IsZero() && strings.Contains(line, "epoch 2/100 step 6 ") {
			pid := pidOfRank(t, cmd.Process.Pid, 1)
			if pid == 0 {
				t.Error("no worker of rank 1 under the launcher")
				return
			}
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Error(err)
			}
			killedAt = time.Now()
		}
	})
	if killedAt.IsZero() {
		t.Fatalf("rank 1 was not killed in epoch 2:\n%s%s", log, stderr.String())
	}
	if took := time.Since(killedAt); took > 30*time.Second {
		t.Errorf("the job took %s to stop after rank 1 died", took)
	}
	if err == nil || !strings.Contains(stderr.String(), "rank 1 failed (signal: killed)") {
		t.Fatalf("launcher: %v, stderr:\n%s", err, stderr.String())
	}
	t.Logf("launcher: %v, stderr:\n%s", err, stderr.String())
	ck, err := train.FindCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := train.LoadCheckpoint(ck); err != nil || c.State.Epoch != 1 {
		t.Fatalf("the last checkpoint: %v (want the end of epoch 1, intact)", err)
	}
}

// runRanksInProcess runs the train command as the given ranks of a job, each in a goroutine with its own
// job variables (and what setup, when given, sets in its env), and returns each one's exit code and
// stderr.
func runRanksInProcess(t *testing.T, world int, ranks []int, args func(rank int) []string, setup ...func(rank int, e *env)) ([]int, []string) {
	t.Helper()
	free, err := freePort(0)
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(free)
	codes, errOut := make([]int, len(ranks)), make([]string, len(ranks))
	var wg sync.WaitGroup
	for i, r := range ranks {
		vars := map[string]string{"RANK": strconv.Itoa(r), "WORLD_SIZE": strconv.Itoa(world), "MASTER_ADDR": "127.0.0.1",
			"MASTER_PORT": port, distTimeoutVar: "2s"}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var o, e bytes.Buffer
			ev := &env{stdout: &o, stderr: &e, getenv: func(k string) string { return vars[k] }}
			for _, f := range setup {
				f(r, ev)
			}
			codes[i] = run(ev, args(r))
			errOut[i] = e.String()
		}()
	}
	wg.Wait()
	return codes, errOut
}

// Bad input is refused at the start, each with an error saying what is wrong: ranks with different
// configs, a missing rank or master, a global batch the ranks do not divide, a port in use.
func TestJobBadInput(t *testing.T) {
	dir := t.TempDir()
	codes, errOut := runRanksInProcess(t, 2, []int{0, 1}, func(r int) []string {
		return tinyTrainArgs(filepath.Join(dir, "hash"), 1, "--set", fmt.Sprintf("train.lr=0.0%d", r+1))
	})
	for i := range codes {
		if codes[i] != exitError || !strings.Contains(errOut[i], "rank 1 has config hash") || !strings.Contains(errOut[i], "start every rank with the same config") {
			t.Errorf("rank %d of a job with two configs: exit %d, %s", i, codes[i], errOut[i])
		}
	}

	_, errOut = runRanksInProcess(t, 2, []int{0}, func(int) []string { return tinyTrainArgs(filepath.Join(dir, "alone"), 1) })
	if !strings.Contains(errOut[0], "dist: rank 1 did not join within 2s (joined: 0)") {
		t.Errorf("rank 0 alone: %s", errOut[0])
	}
	_, errOut = runRanksInProcess(t, 2, []int{1}, func(int) []string { return tinyTrainArgs(filepath.Join(dir, "nomaster"), 1) })
	if !strings.Contains(errOut[0], "dist: rank 1 could not connect to rank 0 at 127.0.0.1:") {
		t.Errorf("rank 1 without rank 0: %s", errOut[0])
	}
	codes, errOut = runRanksInProcess(t, 3, []int{0, 1, 2}, func(int) []string { return tinyTrainArgs(filepath.Join(dir, "batch"), 1) })
	for i := range codes {
		if !strings.Contains(errOut[i], "train.batch_size 16 (the global batch) does not divide among 3 ranks") {
			t.Errorf("rank %d of 3: %s", i, errOut[i])
		}
	}

	if code, _, e := runCLI(t, tinyTrainArgs(filepath.Join(dir, "launch3"), 1, "--nproc-per-node", "3")...); code != exitError ||
		!strings.Contains(e, "does not divide among 3 ranks") {
		t.Errorf("--nproc-per-node 3: exit %d, %s", code, e)
	}
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	if code, _, e := runCLI(t, tinyTrainArgs(filepath.Join(dir, "port"), 1, "--nproc-per-node", "2", "--master-port", port)...); code != exitError ||
		!strings.Contains(e, "--master-port "+port+" cannot be used") {
		t.Errorf("a port in use: exit %d, %s", code, e)
	}
	if code, _, e := runCLI(t, tinyTrainArgs(filepath.Join(dir, "flag"), 1, "--master-port", "29500")...); code != exitUsage ||
		!strings.Contains(e, "--master-port goes with --nproc-per-node") {
		t.Errorf("--master-port alone: exit %d, %s", code, e)
	}
}

func TestWorkerArgsDropTheLauncherFlags(t *testing.T) {
	got := workerArgs([]string{"train", "--nproc-per-node", "4", "--config", "demo", "--master-port=29501", "--nproc-per-node=2", "--set", "a=b"})
	want := []string{"train", "--config", "demo", "--set", "a=b"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got %q, want %q", got, want)
	}
}

// The ranks of a resumed job other than 0 take the run's config from rank 0 and never open the run
// folder, which a job over several nodes may keep on rank 0's disk alone: here rank 1's --resume names a
// folder it cannot see. A run of one epoch in one process (accumulating two micro-batches) resumed for a
// second epoch on two ranks ends with the weights of one process throughout. Ranks that resume with
// different flags, or a rank that starts a new run beside resuming ones, are refused, naming the rank.
func TestResumeReadsTheRunFolderOnRank0Only(t *testing.T) {
	root := t.TempDir()
	// A step schedule without milestones: the learning rate does not depend on train.epochs.
	sched := []string{"--set", "train.schedule.type=step", "--set", "train.schedule.milestones=[]"}
	one := filepath.Join(root, "one")
	if code, out, errOut := runCLI(t, tinyTrainArgs(one, 2, append(sched, "--set", "train.accumulate_steps=2")...)...); code != 0 {
		t.Fatalf("one process: exit %d\n%s%s", code, out, errOut)
	}
	two := filepath.Join(root, "two")
	if code, out, errOut := runCLI(t, tinyTrainArgs(two, 1, append(sched, "--set", "train.accumulate_steps=2")...)...); code != 0 {
		t.Fatalf("first epoch: exit %d\n%s%s", code, out, errOut)
	}
	unseen := filepath.Join(root, "elsewhere", "two")
	resume := func(lr string) func(int) []string {
		return func(r int) []string {
			dir := two
			if r == 1 {
				dir = unseen
			}
			args := []string{"train", "--resume", dir, "--epochs", "2", "--set", "train.accumulate_steps=1"}
			if r == 1 && lr != "" {
				args = append(args, "--set", "train.lr="+lr)
			}
			return args
		}
	}
	codes, errOut := runRanksInProcess(t, 2, []int{0, 1}, resume("0.2"))
	for r := range codes {
		if codes[r] != exitError || !strings.Contains(errOut[r], "dist: rank 1 resumes with config hash") ||
			!strings.Contains(errOut[r], "start every rank with the same --set flags and RESNET_* variables") {
			t.Errorf("rank %d resuming with another learning rate beside it: exit %d, %s", r, codes[r], errOut[r])
		}
	}
	codes, errOut = runRanksInProcess(t, 2, []int{0, 1}, func(r int) []string {
		if r == 1 {
			return tinyTrainArgs(unseen, 2) // a new run beside a resumed one
		}
		return resume("")(r)
	})
	for r := range codes {
		if codes[r] != exitError || !strings.Contains(errOut[r], `dist: rank 1 has config hash "`) || !strings.Contains(errOut[r], `but rank 0 has "resume"`) {
			t.Errorf("rank %d of a job that both resumes and starts a run: exit %d, %s", r, codes[r], errOut[r])
		}
	}
	// The ranks' device has collectives of its own, whose group rank 0 names at the rendezvous together
	// with the run's config.
	var mu sync.Mutex
	made, joined := 0, map[int]string{}
	dev := func(_ int, e *env) {
		e.openDevice = func(string, int) (backend.Device, error) {
			return collectiveCPU{Device: cpu.New(), newID: func() []byte {
				mu.Lock()
				defer mu.Unlock()
				made++
				return fmt.Appendf(nil, "group %d", made)
			}, joined: func(id []byte, rank int) {
				mu.Lock()
				defer mu.Unlock()
				joined[rank] = string(id)
			}}, nil
		}
	}
	codes, errOut = runRanksInProcess(t, 2, []int{0, 1}, resume(""), dev)
	for r := range codes {
		if codes[r] != 0 {
			t.Fatalf("rank %d of the resumed job: exit %d\n%s", r, codes[r], errOut[r])
		}
	}
	if made != 1 || joined[0] != "group 1" || joined[1] != "group 1" {
		t.Errorf("rank 0 made %d groups; the ranks joined %v", made, joined)
	}
	if _, err := os.Stat(filepath.Dir(unseen)); !os.IsNotExist(err) {
		t.Errorf("rank 1 made or opened %s: %v", filepath.Dir(unseen), err)
	}
	sameWeights(t, one, two)
}

// exited says whether the process pid has ended: gone, or a zombie nobody has reaped yet.
func exited(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(fields) == 0 || fields[0] == "Z"
}

// Workers do not outlive their launcher: kill -9 of the launcher, which leaves it no time to stop them,
// has the kernel send them SIGTERM (Linux), and they stop within seconds, rank 0 writing a checkpoint, as
// after Ctrl-C. Rank 0's stdout is the launcher's.
func TestWorkersEndWithTheLauncher(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	if runtime.GOOS != "linux" {
		t.Skip("the kernel signals a process at its parent's death on Linux only")
	}
	dir := filepath.Join(t.TempDir(), "run")
	cmd, stderr := startCLI(t, tinyTrainArgs(dir, 100000, "--nproc-per-node", "2"))
	var pids []int
	var took time.Duration
	log, _ := runWatching(t, cmd, func(line string) {
		if pids != nil || !strings.Contains(line, "epoch 1/100000 step 2 ") {
			return
		}
		for r := range 2 {
			if pid := pidOfRank(t, cmd.Process.Pid, r); pid != 0 {
				pids = append(pids, pid)
				t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) }) // should the test fail
			}
		}
		if len(pids) != 2 {
			t.Errorf("found the workers %v under the launcher", pids)
			return
		}
		// Rank 0 writes to the launcher's own stdout, not through a pipe of the launcher's, so that a
		// terminal reaches it (a progress bar instead of log lines).
		own, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/1", cmd.Process.Pid))
		if got, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/1", pids[0])); err != nil || got != own {
			t.Errorf("rank 0's stdout is %q (%v), not the launcher's %q", got, err, own)
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		for _, pid := range pids {
			for !exited(pid) && time.Since(killed) < 20*time.Second {
				time.Sleep(20 * time.Millisecond)
			}
		}
		took = time.Since(killed).Round(time.Millisecond)
	})
	if len(pids) != 2 {
		t.Fatalf("the launcher was not killed:\n%s%s", log, stderr.String())
	}
	for _, pid := range pids {
		if !exited(pid) {
			t.Fatalf("worker %d still runs %s after its launcher was killed", pid, took)
		}
	}
	t.Logf("the workers exited %s after the launcher was killed", took)
	// Rank 0's last lines may come after the test stopped reading the dead launcher's output: the
	// checkpoint itself is the evidence.
	if _, err := train.FindCheckpoint(dir); err != nil {
		t.Errorf("rank 0 did not stop with a checkpoint (%v):\n%s%s", err, log, stderr.String())
	}
}

// collectiveCPU is the CPU device with collectives of its own as far as a job's start goes: rank 0 makes
// the group's id and every rank joins the group it names; the job then sums on the host, as it does
// without collectives.
type collectiveCPU struct {
	backend.Device
	newID  func() []byte
	joined func(id []byte, rank int)
}

func (d collectiveCPU) NewCollectiveID() ([]byte, error) { return d.newID(), nil }

func (d collectiveCPU) JoinCollectives(id []byte, rank, _ int) (backend.Collectives, error) {
	d.joined(id, rank)
	return nil, nil
}
