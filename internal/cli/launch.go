package cli

// Data-parallel training from the command line: a worker joining its job (started by torchrun, srun or
// the launcher here), and the launcher that --nproc-per-node runs, which starts the workers of a job on
// this machine.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"resnet/internal/backend"
	"resnet/internal/config"
	"resnet/internal/dist"
	"resnet/internal/train"
)

// distTimeoutVar bounds the rendezvous: how long the workers wait for each other at the start.
const distTimeoutVar = "RESNET_DIST_TIMEOUT"

// launcherVar names, for the start line, the launcher that set a worker's torchrun variables: the
// launcher here sets it to "--nproc-per-node".
const launcherVar = "RESNET_LAUNCHER"

// job is a worker's link to the other ranks of its data-parallel job.
type job struct {
	info dist.Info
	comm dist.Communicator   // nil for a single process
	coll backend.Collectives // the device's own collectives (NCCL), when it has them
}

// resumeHash stands for the config at the rendezvous of a resumed run, whose config only rank 0 reads:
// ranks started one with --resume and one without are refused there, and agreeOnConfig compares the
// configs once every rank has resolved its own.
const resumeHash = "resume"

// startMessage is what rank 0 hands the other ranks at the rendezvous.
type startMessage struct {
	// RunConfig is a resumed run's own config and RunLabel where it came from (the newest checkpoint, or
	// config.yaml): the other ranks take it from rank 0, which alone reads the run folder.
	RunConfig []byte `json:"run_config,omitempty"`
	RunLabel  string `json:"run_label,omitempty"`
	// CollectiveID names the group of the device's own collectives (NCCL's unique id), when it has them.
	CollectiveID []byte `json:"collective_id,omitempty"`
}

// joinJob meets the other ranks of the job info describes, after they agree on the config: a rank
// started with another config is refused, naming it. On a device with collectives of its own, rank 0
// makes their group's id and hands it to the others at the rendezvous. Rank 0 of a resumed run (from
// set) hands over the run's config too, for followRank0.
func joinJob(e *env, info dist.Info, dev backend.Device, yml []byte, from *train.ResumePoint) (*job, error) {
	if info.WorldSize <= 1 {
		return &job{info: info}, nil
	}
	hash, msg := configHash(yml), startMessage{}
	if from != nil {
		hash, msg.RunConfig, msg.RunLabel = resumeHash, from.Config, from.Label
	}
	cd, native := dev.(backend.CollectiveDevice)
	if native && info.Rank == 0 {
		var err error
		if msg.CollectiveID, err = cd.NewCollectiveID(); err != nil {
			return nil, fmt.Errorf("dist: %s cannot start the job's collectives: %w", dev.Name(), err)
		}
	}
	j, msg, err := meetRanks(e, info, hash, msg)
	if err != nil {
		return nil, err
	}
	if from != nil {
		if err := agreeOnConfig(j.comm, yml, nil); err != nil {
			j.close()
			return nil, err
		}
	}
	if err := j.joinCollectives(dev, msg.CollectiveID); err != nil {
		return nil, err
	}
	return j, nil
}

// followRank0 is how a rank other than 0 joins a resumed run without reading the run folder: it takes
// the run's config from rank 0 at the rendezvous, applies its own RESNET_* variables and --set flags
// over it as rank 0 did (src), checks with the others that all came to the same config, and opens its
// device, the GPU of its local rank.
func followRank0(e *env, info dist.Info, src config.Source) (rankRun, error) {
	j, msg, err := meetRanks(e, info, resumeHash, startMessage{})
	if err != nil {
		return rankRun{}, err
	}
	r := rankRun{job: j, resume: true}
	var yml []byte
	err = func() error {
		if msg.RunConfig == nil {
			return errors.New("dist: rank 0 resumes a run but sent no config for it")
		}
		src.Data, src.Label = msg.RunConfig, msg.RunLabel+" on rank 0"
		if r.cfg, err = config.Load(src); err != nil {
			return err
		}
		if yml, err = r.cfg.YAML(); err != nil {
			return err
		}
		if err := train.CheckWorld(r.cfg, info.WorldSize); err != nil {
			return err
		}
		r.dev, err = openDeviceOrdinal(e, r.cfg.Device, r.cfg.CUDA, info.LocalRank)
		return err
	}()
	if err := agreeOnConfig(j.comm, yml, err); err != nil {
		j.close()
		return rankRun{}, err
	}
	r.yml = yml
	if err := j.joinCollectives(r.dev, msg.CollectiveID); err != nil {
		return rankRun{}, err
	}
	return r, nil
}

// configHash is what the rendezvous compares of the resolved config.
func configHash(yml []byte) string {
	h := sha256.Sum256(yml)
	return hex.EncodeToString(h[:8])
}

// meetRanks runs the rendezvous, rank 0 handing msg to the others, and returns the job with rank 0's
// message.
func meetRanks(e *env, info dist.Info, hash string, msg startMessage) (*job, startMessage, error) {
	timeout, err := distTimeout(e)
	if err != nil {
		return nil, msg, err
	}
	opts := dist.Options{ConfigHash: hash, JoinTimeout: timeout}
	if info.Rank == 0 {
		if opts.Payload, err = json.Marshal(msg); err != nil {
			return nil, msg, err
		}
	}
	g, err := dist.Rendezvous(info, opts)
	if err != nil {
		return nil, msg, err
	}
	var got startMessage
	if err := json.Unmarshal(g.Payload(), &got); err != nil {
		g.Close()
		return nil, msg, fmt.Errorf("dist: rank 0's start message does not read (%v); start every rank with the same program", err)
	}
	return &job{info: info, comm: dist.NewCPU(g)}, got, nil
}

// agreeOnConfig checks, once every rank of a resumed run has resolved its config, that all came to rank
// 0's: each sends its config's hash, or failed, why it could not resolve one. Every rank returns the
// same error, naming the first rank that differs, except that a rank that failed returns its own.
func agreeOnConfig(comm dist.Communicator, yml []byte, failed error) error {
	mine := "ok " + configHash(yml)
	if failed != nil {
		mine = "failed " + failed.Error()
	}
	parts, err := comm.AllGather([]byte(mine))
	if err != nil {
		return fmt.Errorf("dist: comparing the ranks' configs: %w", err)
	}
	if failed != nil {
		return failed
	}
	for r, p := range parts {
		switch s := string(p); {
		case strings.HasPrefix(s, "failed "):
			return fmt.Errorf("dist: rank %d could not resume with rank 0's config: %s", r, strings.TrimPrefix(s, "failed "))
		case s != string(parts[0]):
			return fmt.Errorf("dist: rank %d resumes with config hash %q but rank 0 has %q; start every rank with the same --set flags and RESNET_* variables",
				r, strings.TrimPrefix(s, "ok "), strings.TrimPrefix(string(parts[0]), "ok "))
		}
	}
	return nil
}

// joinCollectives joins the group of the device's own collectives, when it has them, that rank 0 named
// with id.
func (j *job) joinCollectives(dev backend.Device, id []byte) error {
	cd, native := dev.(backend.CollectiveDevice)
	if !native {
		return nil
	}
	var err error
	if j.coll, err = cd.JoinCollectives(id, j.info.Rank, j.info.WorldSize); err != nil {
		j.comm.Close()
		return fmt.Errorf("dist: rank %d cannot join the job's collectives on %s: %w", j.info.Rank, dev.Name(), err)
	}
	return nil
}

// distTimeout reads RESNET_DIST_TIMEOUT, a duration such as 90s or 5m (or a number of seconds); unset, the
// dist package's default.
func distTimeout(e *env) (time.Duration, error) {
	s := strings.TrimSpace(e.lookupEnv(distTimeoutVar))
	if s == "" {
		return 0, nil
	}
	if n, err := strconv.ParseFloat(s, 64); err == nil && n > 0 {
		return time.Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s=%q must be a positive duration such as 90s or 5m", distTimeoutVar, s)
	}
	return d, nil
}

func (j *job) close() {
	if j.comm == nil {
		return
	}
	if j.coll != nil {
		j.coll.Close()
	}
	j.comm.Close()
}

// describe is what the start line adds about the job.
func (j *job) describe() string {
	if j.comm == nil {
		return ""
	}
	return fmt.Sprintf(", %d ranks (%s)", j.info.WorldSize, j.info.Source)
}

// workerFailed is the launcher's error when a worker failed: it exits with the worker's code.
type workerFailed struct {
	rank, code int
	status     string
}

func (w workerFailed) Error() string {
	return fmt.Sprintf("train: rank %d failed (%s); the other workers were stopped", w.rank, w.status)
}

// stopGrace is how long the launcher waits, after asking the workers to stop, before it kills them.
const stopGrace = 10 * time.Second

// launch runs the job of --nproc-per-node workers: this program again, once per rank, with the variables
// torchrun would set and without the launcher's flags. Rank 0's output passes through; the others' error
// output comes prefixed with their rank. SIGINT and SIGTERM go on to every worker; when one fails, the
// launcher stops the others and exits with the failed worker's code.
func launch(e *env, o *trainOptions, cfg config.Config) error {
	n := o.nproc
	if e.lookupEnv("WORLD_SIZE") != "" || e.lookupEnv("RANK") != "" {
		return usageError{errors.New("--nproc-per-node starts the workers of a job itself; drop it when torchrun or another launcher starts this command (RANK or WORLD_SIZE is set)")}
	}
	if err := train.CheckWorld(cfg, n); err != nil {
		return err
	}
	port, err := freePort(o.masterPort)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("train: finding this program to start its workers: %w", err)
	}
	args := workerArgs(e.args)
	env := []string{"WORLD_SIZE=" + strconv.Itoa(n), "LOCAL_WORLD_SIZE=" + strconv.Itoa(n), "MASTER_ADDR=127.0.0.1",
		"MASTER_PORT=" + strconv.Itoa(port), launcherVar + "=--nproc-per-node"}
	if os.Getenv("GOMAXPROCS") == "" {
		// An equal share of the cores each: for the CPU device's compute, and for a GPU worker's loader.
		env = append(env, "GOMAXPROCS="+strconv.Itoa(max(1, runtime.NumCPU()/n)))
	}

	// The workers end with the thread that started them where the kernel ties them to the launcher
	// (endWithParent): this goroutine keeps that thread until they have exited.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	workers := make([]*exec.Cmd, n)
	for r := range workers {
		cmd := exec.Command(exe, args...)
		cmd.Env = append(append(os.Environ(), env...), "RANK="+strconv.Itoa(r), "LOCAL_RANK="+strconv.Itoa(r))
		cmd.Stdout, cmd.Stderr = e.stdout, e.stderr
		if r > 0 {
			cmd.Stdout, cmd.Stderr = nil, &prefixWriter{w: e.stderr, prefix: fmt.Sprintf("[rank %d] ", r)}
		}
		workerAttrs(cmd) // a terminal's Ctrl-C reaches the workers once, through the launcher
		if err := cmd.Start(); err != nil {
			signalAll(workers[:r], nil, syscall.SIGKILL)
			return fmt.Errorf("train: starting worker %d: %w", r, err)
		}
		workers[r] = cmd
	}
	return superviseWorkers(workers, sig)
}

// superviseWorkers waits for every worker, forwarding the signals that arrive on sig; the first failure
// makes it stop the others.
func superviseWorkers(workers []*exec.Cmd, sig <-chan os.Signal) error {
	type exit struct {
		rank int
		err  error
	}
	exits := make(chan exit, len(workers))
	for r, w := range workers {
		go func() { exits <- exit{r, w.Wait()} }()
	}
	exited := make([]bool, len(workers))
	var failed *workerFailed
	var kill <-chan time.Time
	signalled, interrupted := false, false
	for left := len(workers); left > 0; {
		select {
		case s := <-sig:
			signalled = true
			signalAll(workers, exited, s)
		case <-kill:
			signalAll(workers, exited, syscall.SIGKILL)
		case x := <-exits:
			left--
			exited[x.rank] = true
			if pw, ok := workers[x.rank].Stderr.(*prefixWriter); ok {
				pw.flush()
			}
			if x.err == nil {
				continue
			}
			status := workers[x.rank].ProcessState
			c := status.ExitCode()
			if c == exitInterrupted && signalled {
				interrupted = true
				continue
			}
			if failed == nil {
				failed = &workerFailed{rank: x.rank, code: c, status: status.String()}
				if c <= 0 {
					failed.code = exitError
				}
				signalAll(workers, exited, syscall.SIGTERM)
				kill = time.After(stopGrace)
			}
		}
	}
	switch {
	case failed != nil:
		return *failed
	case interrupted:
		return train.ErrInterrupted
	}
	return nil
}

// signalAll sends s to the workers that have not exited (exited nil: to all).
func signalAll(workers []*exec.Cmd, exited []bool, s os.Signal) {
	for r, w := range workers {
		if exited == nil || !exited[r] {
			w.Process.Signal(s) // one exiting meanwhile is no error
		}
	}
}

// freePort is port when it is free on this machine, or, for 0, a port the system picks.
func freePort(port int) (int, error) {
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(port))
	if err != nil {
		return 0, fmt.Errorf("train: --master-port %d cannot be used: %v; choose another, or leave the flag out for a free one", port, err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// workerArgs are the launcher's arguments less its own flags.
func workerArgs(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		name, _, withValue := strings.Cut(a, "=")
		if name == "--nproc-per-node" || name == "--master-port" {
			if !withValue {
				i++ // the value is the next argument
			}
			continue
		}
		out = append(out, a)
	}
	return out
}

// prefixWriter writes whole lines to w, each starting with prefix.
type prefixWriter struct {
	mu      sync.Mutex
	w       io.Writer
	prefix  string
	partial []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.partial = append(p.partial, b...)
	for {
		i := bytes.IndexByte(p.partial, '\n')
		if i < 0 {
			return len(b), nil
		}
		if _, err := fmt.Fprintf(p.w, "%s%s", p.prefix, p.partial[:i+1]); err != nil {
			return len(b), err
		}
		p.partial = p.partial[i+1:]
	}
}

// flush writes what is left of a last line that had no newline.
func (p *prefixWriter) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.partial) > 0 {
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.partial)
		p.partial = nil
	}
}
