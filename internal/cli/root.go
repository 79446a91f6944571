// Package cli holds the resnet command line: one file per command, each with an options struct, a
// constructor binding its flags, and a run function that tests call directly. Exit codes are decided here.
package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"resnet/internal/backend"
	_ "resnet/internal/cpu"  // registers the CPU backend
	_ "resnet/internal/cuda" // registers the CUDA backend (a stub that explains itself without -tags cuda)
	"resnet/internal/sysmem"
	"resnet/internal/train"
)

// Exit codes.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitDiverged    = 3 // training met a NaN or an infinity: train.ErrDiverged
	exitInterrupted = 130
)

// usageError marks errors that should print the command's usage.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// env is what commands need from the process, injectable for tests.
type env struct {
	stdout, stderr io.Writer
	// terminal reports whether stdout is a terminal (progress bars instead of log lines).
	terminal bool
	// stop, when non-nil, replaces signal handling (tests close it to interrupt training).
	stop <-chan struct{}
	// fallbackOnce prints why --device auto fell back to the CPU only once.
	fallbackOnce sync.Once
	// warned holds the warnings printed so far: a config loaded several times warns once.
	warned map[string]bool
	// hostMemory, when set, replaces sysmem.HostLimit (tests fix the limit the memory checks see).
	hostMemory func() sysmem.Limit
	// getenv, when set, replaces os.Getenv for the variables of a data-parallel job (tests run ranks in
	// one process).
	getenv func(string) string
	// args are the command line's arguments, which the launcher hands its workers.
	args []string
	// openDevice, when set, opens the devices of the train command in place of the backends (tests give
	// a data-parallel job a device with collectives of its own).
	openDevice func(name string, ordinal int) (backend.Device, error)
}

// lookupEnv reads a variable of the process environment, or of the test's.
func (e *env) lookupEnv(name string) string {
	if e.getenv != nil {
		return e.getenv(name)
	}
	return os.Getenv(name)
}

// warn prints a warning on stderr, once per text.
func (e *env) warn(msg string) {
	if e.warned[msg] {
		return
	}
	if e.warned == nil {
		e.warned = map[string]bool{}
	}
	e.warned[msg] = true
	fmt.Fprintf(e.stderr, "resnet: warning: %s\n", msg)
}

// hostLimit is the host memory the command may use.
func (e *env) hostLimit() sysmem.Limit {
	if e.hostMemory != nil {
		return e.hostMemory()
	}
	return sysmem.HostLimit()
}

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "resnet",
		Short: "Train, evaluate and compare deep residual networks and their plain counterparts",
		Long: `resnet trains, evaluates and compares ResNets (He et al., "Deep Residual Learning for Image
Recognition", 2015) and their plain counterparts, on the CPU or an NVIDIA GPU, from YAML configs.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newTrainCmd(e), newEvalCmd(e), newPredictCmd(e), newCompareCmd(e), newModelsCmd(e), newBenchCmd(e), newVersionCmd(e))
	root.AddCommand(newExportCmd(e), newImportCmd(e), newPlotCmd(e))
	registerCompletions(root)
	return root
}

// Main runs the command line and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr, terminal: isTerminal(stdout)}
	return run(e, args)
}

func run(e *env, args []string) int {
	e.args = args
	root := newRoot(e)
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	if errors.Is(err, train.ErrInterrupted) {
		return exitInterrupted
	}
	fmt.Fprintf(e.stderr, "resnet: %v\n", err)
	var failed workerFailed
	if errors.As(err, &failed) {
		return failed.code
	}
	var ue usageError
	switch {
	case errors.As(err, &ue) || isCobraUsageError(err):
		fmt.Fprintf(e.stderr, "\n%s", cmd.UsageString())
		return exitUsage
	case errors.Is(err, train.ErrDiverged):
		return exitDiverged
	}
	return exitError
}

// isCobraUsageError recognises cobra's own argument errors (unknown command, wrong arg count).
func isCobraUsageError(err error) bool {
	for _, p := range []string{"unknown command", "accepts ", "requires at least", "unknown flag", "unknown shorthand"} {
		if strings.Contains(err.Error(), p) {
			return true
		}
	}
	return false
}

// printJSON writes v as indented JSON, the form of every --json report.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printJSONLine writes v as one line of JSON (JSON Lines).
func printJSONLine(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
