package cli

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestMain lets the test binary stand in for the resnet binary: with RESNET_CLI_CHILD=1 it runs the CLI
// on its arguments and exits with its code, so a test can signal a real process.
func TestMain(m *testing.M) {
	if os.Getenv("RESNET_CLI_CHILD") == "1" {
		os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// SIGINT in the middle of training: the process finishes the step, writes a checkpoint, exits 130, and a
// resumed run ends with the same metrics as an uninterrupted one.
func TestSIGINTCheckpointsAndResumes(t *testing.T) {
	root := t.TempDir()
	args := func(out string) []string {
		return []string{"train", "--config", "demo", "--out", out, "--device", "cpu", "--epochs", "2",
			"--set", "dataset.train_size=128", "--set", "dataset.test_size=32", "--set", "train.batch_size=16",
			"--set", "eval.batch_size=32", "--set", "train.log_every=1"}
	}
	full := filepath.Join(root, "full")
	if code, out, errOut := runCLI(t, args(full)...); code != 0 {
		t.Fatalf("uninterrupted run: exit %d\n%s%s", code, out, errOut)
	}

	stopped := filepath.Join(root, "stopped")
	cmd := exec.Command(os.Args[0], args(stopped)...)
	cmd.Env = append(os.Environ(), "RESNET_CLI_CHILD=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	sc := bufio.NewScanner(stdout)
	signalled := false
	for sc.Scan() {
		line := sc.Text()
		log.WriteString(line + "\n")
		// Interrupt during the first epoch, after step 3 has been logged.
		if !signalled && strings.Contains(line, "epoch 1/2 step 3 ") {
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			signalled = true
		}
	}
	err = cmd.Wait()
	if !signalled {
		t.Fatalf("never saw step 3 in the log:\n%s%s", log.String(), stderr.String())
	}
	exitErr, ok := err.(*exec.ExitError)
	if !ok || exitErr.ExitCode() != exitInterrupted {
		t.Fatalf("interrupted run ended with %v, want exit %d\n%s%s", err, exitInterrupted, log.String(), stderr.String())
	}
	if !strings.Contains(log.String(), "interrupted: checkpoint written to ") || !strings.Contains(log.String(), "resume with: resnet train --resume "+stopped) {
		t.Errorf("interrupted run did not report its checkpoint:\n%s", log.String())
	}
	if _, err := os.Stat(filepath.Join(stopped, "metrics.jsonl")); err == nil {
		t.Error("an evaluation ran although the run was interrupted in its first epoch")
	}

	if code, out, errOut := runCLI(t, "train", "--resume", stopped); code != 0 {
		t.Fatalf("resume: exit %d\n%s%s", code, out, errOut)
	}
	want := readMetricsNoTiming(t, filepath.Join(full, "metrics.jsonl"))
	got := readMetricsNoTiming(t, filepath.Join(stopped, "metrics.jsonl"))
	if got != want {
		t.Errorf("resumed metrics differ from the uninterrupted run:\n got %s\nwant %s", got, want)
	}
}

// readMetricsNoTiming returns metrics.jsonl with the timing fields blanked.
func readMetricsNoTiming(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var keep []string
		for _, f := range strings.Split(strings.Trim(line, "{}"), ",") {
			name, _, _ := strings.Cut(f, ":")
			if name != `"images_per_sec"` && !strings.HasSuffix(name, `_seconds"`) {
				keep = append(keep, f)
			}
		}
		out = append(out, strings.Join(keep, ","))
	}
	return strings.Join(out, "\n")
}
