package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"resnet/internal/train"
)

// --device auto says once, on stderr, why it is not using the GPU.
func TestAutoDeviceSaysWhyOnce(t *testing.T) {
	var out, errOut strings.Builder
	e := &env{stdout: &out, stderr: &errOut}
	var name string
	for range 2 {
		d, err := openDevice(e, "auto", false)
		if err != nil {
			t.Fatal(err)
		}
		name = d.Name()
	}
	msg := errOut.String()
	switch {
	case name == "cuda" && msg != "":
		t.Errorf("auto opened the GPU and printed %q", msg)
	case name == "cpu" && (!strings.HasPrefix(msg, "resnet: device auto: using the CPU (cuda: ") ||
		strings.Count(msg, "\n") != 1 || !strings.HasSuffix(msg, ")\n")):
		t.Errorf("auto fell back to the CPU and printed %q; want one line giving the CUDA reason", msg)
	}
	if out.Len() != 0 {
		t.Errorf("stdout %q", out.String())
	}
	if _, err := openDevice(e, "cpu", false); err != nil || errOut.String() != msg {
		t.Errorf("--device cpu printed %q, %v", strings.TrimPrefix(errOut.String(), msg), err)
	}
}

// A run folder that another process holds stops train, --resume and compare at once, naming the holder.
func TestRunFolderInUse(t *testing.T) {
	root := t.TempDir()
	run := filepath.Join(root, "runs", "demo")
	lock, err := train.NewRunDir(run).Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock()
	held := fmt.Sprintf("%s: the run folder is in use (process %d holds %s)\n", run, os.Getpid(), filepath.Join(run, "lock"))
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"train", "--config", "demo", "--device", "cpu", "--out", run}, "resnet: " + held},
		{[]string{"compare", "demo", "cifar_resnet8", "--device", "cpu", "--out", root, "--runs", filepath.Join(root, "runs")},
			"resnet: compare demo: " + held},
	} {
		args, want := c.args, c.want
		code, _, errOut := runCLI(t, args...)
		if code != 1 || errOut != want {
			t.Errorf("%v: exit %d, stderr %q; want exit 1, %q", args, code, errOut, want)
		}
	}
}
