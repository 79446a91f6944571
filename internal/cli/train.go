package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"resnet/internal/backend"
	"resnet/internal/config"
	"resnet/internal/dist"
	"resnet/internal/model"
	"resnet/internal/train"
)

type trainOptions struct {
	configFlags
	configFile string
	out        string
	resume     string
	dryRun     bool
	// nproc and masterPort start a data-parallel job of nproc workers on this machine (launch.go).
	nproc      int
	masterPort int
}

func newTrainCmd(e *env) *cobra.Command {
	o := &trainOptions{}
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Train a network from a YAML config (a file, or a shipped preset by name)",
		Example: `  resnet train --config demo.yaml
  resnet train --config configs/cifar_resnet56.yaml --set train.epochs=10 --out runs/r56-short
  resnet train --config resnet50.yaml --dry-run
  resnet train --resume runs/demo
  resnet train --config cifar_resnet56 --nproc-per-node 4
  torchrun --no-python --nproc-per-node 8 resnet train --config resnet50`,
		Long: `Train a network from a YAML config (a file, or a shipped preset by name).

Data-parallel training: --nproc-per-node N starts N workers on this machine (one per GPU, or N CPU
processes), each with an equal share of the cores (GOMAXPROCS, unless set). Each trains on its share of
every global batch (train.batch_size, which must divide by N), and the gradients are summed over the
workers. The same command runs as one worker of a job started by torchrun (RANK, LOCAL_RANK, WORLD_SIZE,
MASTER_ADDR, MASTER_PORT) or by Slurm's srun (SLURM_PROCID, SLURM_LOCALID, SLURM_NTASKS, SLURM_NODELIST).
Rank 0 alone writes the run directory and prints progress. RESNET_DIST_TIMEOUT (such as 2m) bounds how
long the workers wait for each other at the start (default 5m).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTrain(e, o, cmd.Flags().Changed)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.configFile, "config", "c", "", "config file, or a preset name (see 'resnet models')")
	f.StringVar(&o.out, "out", "", "run directory (default runs/<config name>)")
	f.StringVar(&o.resume, "resume", "", "continue the run in this directory from its newest checkpoint")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the resolved config and the model summary, then exit")
	f.IntVar(&o.nproc, "nproc-per-node", 0, "start this many data-parallel workers on this machine (one per GPU, or CPU processes)")
	f.IntVar(&o.masterPort, "master-port", 0, "with --nproc-per-node: the TCP port of rank 0's rendezvous (default a free one)")
	o.bind(f, "the run")
	return cmd
}

func runTrain(e *env, o *trainOptions, changed func(string) bool) error {
	switch {
	case o.nproc < 0:
		return usageError{fmt.Errorf("--nproc-per-node must be >= 1 (got %d)", o.nproc)}
	case changed("master-port") && o.nproc == 0:
		return usageError{errors.New("--master-port goes with --nproc-per-node, which starts the workers that use it")}
	case o.masterPort < 0 || o.masterPort > 65535:
		return usageError{fmt.Errorf("--master-port must be a TCP port, 1 to 65535 (got %d)", o.masterPort)}
	}
	src := config.Source{File: o.configFile, UseEnv: true, Sets: o.toSets(changed), Warn: e.warn}
	runDir := o.out
	if o.resume != "" {
		if o.configFile != "" {
			return usageError{errors.New("--resume continues a run with its own config; drop --config (use --set to change keys)")}
		}
		if o.out != "" && filepath.Clean(o.out) != filepath.Clean(o.resume) {
			return usageError{errors.New("--resume continues the run in place; --out must be omitted or name the same directory")}
		}
		runDir = o.resume
	}
	// A worker learns its place in the job first: the other ranks of a resumed run take its config from
	// rank 0, which alone reads the run folder (it may be on rank 0's disk only).
	info := dist.Info{WorldSize: 1}
	if !o.dryRun && o.nproc == 0 {
		var err error
		if info, err = dist.Discover(e.lookupEnv); err != nil {
			return err
		}
		if l := e.lookupEnv(launcherVar); l != "" && info.Source == "torchrun" {
			info.Source = l
			// Its stderr (and, beyond rank 0, its stdout) is the launcher's pipe, which the launcher's
			// death closes: writing there must not kill the worker before it stops as told.
			signal.Ignore(syscall.SIGPIPE)
		}
	}
	if o.resume != "" && info.Rank != 0 {
		r, err := followRank0(e, info, src)
		if err != nil {
			return err
		}
		return trainRank(e, r, runDir)
	}
	var from *train.ResumePoint
	if o.resume != "" {
		rp, err := train.NewRunDir(o.resume).ResumePoint()
		if err != nil {
			return err
		}
		from = rp
		src.Data, src.Label = rp.Config, rp.Label
	}
	cfg, err := config.Load(src)
	if err != nil {
		return err
	}
	yml, err := cfg.YAML()
	if err != nil {
		return err
	}
	if runDir == "" {
		runDir = filepath.Join("runs", cfg.Name)
	}
	if o.dryRun {
		origin, err := configOrigin(src)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "# config from %s, with the RESNET_* environment and flags over it\n", origin)
		fmt.Fprintf(e.stdout, "# resolved config (run directory %s)\n%s\n", runDir, yml)
		if err := printSummary(e.stdout, cfg); err != nil {
			return err
		}
		return printMemory(e, cfg)
	}
	if o.nproc > 0 {
		return launch(e, o, cfg)
	}
	if err := train.CheckWorld(cfg, info.WorldSize); err != nil {
		return err
	}
	dev, err := openDeviceOrdinal(e, cfg.Device, cfg.CUDA, info.LocalRank)
	if err != nil {
		return err
	}
	job, err := joinJob(e, info, dev, yml, from)
	if err != nil {
		return err
	}
	return trainRank(e, rankRun{cfg: cfg, yml: yml, dev: dev, job: job, from: from, resume: o.resume != ""}, runDir)
}

// modelName is the zoo name of the model a config trains: model.arch with model.depth applied
// (cifar_resnet20 with depth 56 trains cifar_resnet56).
func modelName(m config.ModelConfig) string {
	if s, err := model.Resolve(m.Arch, m.Depth); err == nil {
		return s.Name
	}
	return m.Arch
}

// rankRun is what a process trains with once it has joined its job.
type rankRun struct {
	cfg    config.Config
	yml    []byte
	dev    backend.Device
	job    *job
	resume bool
	from   *train.ResumePoint // rank 0's resume point; nil elsewhere
}

// trainRank trains this process's part of the run in runDir and reports the result (on rank 0).
func trainRank(e *env, r rankRun, runDir string) error {
	defer r.job.close()
	rank := r.job.info.Rank
	stdout := e.stdout
	if rank != 0 {
		stdout = io.Discard // the other ranks speak only of errors, on stderr
	}
	stop, release := interruptChannel(e, rank == 0)
	defer release()
	fmt.Fprintf(stdout, "training %s on %s, run directory %s%s\n", modelName(r.cfg.Model), r.dev.Name(), runDir, r.job.describe())
	res, err := train.Run(train.Options{
		Config: r.cfg, ConfigYAML: r.yml, RunDir: runDir, Resume: r.resume, From: r.from,
		Device: r.dev, Out: stdout, Terminal: e.terminal && rank == 0, Stop: stop, HostMemory: e.hostMemory, Version: version,
		Comm: r.job.comm, Collectives: r.job.coll,
	})
	if err != nil {
		if errors.Is(err, train.ErrInterrupted) {
			fmt.Fprintf(stdout, "resume with: resnet train --resume %s\n", runDir)
		}
		return err
	}
	fmt.Fprintf(stdout, "done: test error %.2f%% (top-5 %.2f%%) after %d epochs\nrun directory: %s\n  metrics:    %s\n  checkpoint: %s\n",
		100*res.Last.TestErr, 100*res.Last.TestTop5Err, res.Epochs, runDir,
		train.NewRunDir(runDir).MetricsPath(), res.Checkpoint)
	return nil
}

// configOrigin names where a config comes from, for --dry-run.
func configOrigin(src config.Source) (string, error) {
	if src.Data != nil {
		return src.Label, nil
	}
	if src.File == "" {
		return "built-in defaults", nil
	}
	return config.Locate(src.File)
}

// interruptChannel returns the channel that asks training to stop: the test hook when set, else one closed
// by the first SIGINT or SIGTERM (a second one exits at once), which it announces when tell is set (the
// other ranks of a data-parallel job follow rank 0's decision silently). release stops listening for
// signals.
//
// Signals within repeatWindow of the first count as that one: a worker whose launcher died gets the
// parent-death signal once for each of the launcher's threads the kernel hands it to as they exit.
func interruptChannel(e *env, tell bool) (stop <-chan struct{}, release func()) {
	if e.stop != nil {
		return e.stop, func() {}
	}
	ch := make(chan struct{})
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s, ok := <-sig
		if !ok {
			return
		}
		if tell {
			fmt.Fprintf(e.stderr, "\n%v: finishing the current step and writing a checkpoint (again to quit at once)\n", s)
		}
		close(ch)
		first := time.Now()
		for range sig {
			if time.Since(first) >= repeatWindow {
				os.Exit(exitInterrupted)
			}
		}
	}()
	return ch, func() { signal.Stop(sig) }
}

// repeatWindow is how soon after the first a signal is taken for a repeat of it rather than a second one.
const repeatWindow = 500 * time.Millisecond
