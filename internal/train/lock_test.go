//go:build unix

package train

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A second holder of a run folder is refused at once, with the PID of the first; unlocking frees it.
func TestRunDirLockIsExclusive(t *testing.T) {
	r := NewRunDir(filepath.Join(t.TempDir(), "run"))
	first, err := r.Lock()
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Lock()
	want := fmt.Sprintf("%s: the run folder is in use (process %d holds %s)", r.Path(), os.Getpid(), r.LockPath())
	if !errors.Is(err, ErrRunInUse) || err.Error() != want {
		t.Fatalf("second Lock: %v; want %q", err, want)
	}
	if err := first.Unlock(); err != nil {
		t.Fatal(err)
	}
	again, err := r.Lock()
	if err != nil {
		t.Fatalf("Lock after Unlock: %v", err)
	}
	again.Unlock()
}

// Training refuses a run folder that another process holds, and leaves it untouched.
func TestRunRefusesLockedRunDir(t *testing.T) {
	dir := t.TempDir()
	lock, err := NewRunDir(dir).Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock()
	for _, resume := range []bool{false, true} {
		if _, err := runOnce(t, smallConfig(1), dir, resume, nil, nil); !errors.Is(err, ErrRunInUse) {
			t.Errorf("resume %v: %v; want ErrRunInUse", resume, err)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("the refused runs wrote into the folder: %v", ents)
	}
}

// With the lock held, the temporary files of writes interrupted by a kill are removed, and nothing else.
func TestRunDirLockRemovesStaleTemps(t *testing.T) {
	r := NewRunDir(t.TempDir())
	keep := []string{r.ConfigPath(), r.CheckpointPath(4), filepath.Join(r.Path(), "notes.tmp")}
	stale := []string{filepath.Join(r.Path(), ".config.yaml.tmp-123"), filepath.Join(r.CheckpointDir(), ".step-000000008.safetensors.tmp-77")}
	if err := os.MkdirAll(r.CheckpointDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range append(append([]string(nil), keep...), stale...) {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	lock, err := r.Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock()
	for _, p := range keep {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed", p)
		}
	}
	for _, p := range stale {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there (%v)", p, err)
		}
	}
}

// The lock dies with its process: after kill -9 of a holder the folder can be taken at once.
func TestRunDirLockDiesWithItsProcess(t *testing.T) {
	if dir := os.Getenv("RESNET_LOCK_TEST_CHILD"); dir != "" {
		if _, err := NewRunDir(dir).Lock(); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	r := NewRunDir(t.TempDir())
	child := exec.Command(os.Args[0], "-test.run=^TestRunDirLockDiesWithItsProcess$")
	child.Env = append(os.Environ(), "RESNET_LOCK_TEST_CHILD="+r.Path())
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("child said %q, %v", line, err)
	}
	_, err = r.Lock()
	if want := "(process " + strconv.Itoa(child.Process.Pid) + " holds "; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Lock while the child holds it: %v; want it to name the child (%s)", err, want)
	}
	if err := child.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	lock, err := r.Lock()
	if err != nil {
		t.Fatalf("Lock after the holder was killed: %v", err)
	}
	lock.Unlock()
}
