package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// dirEntries lists the names in dir, so tests can prove no temporary file was left behind.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteFileWritesContent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	err := WriteFile(path, 0o644, func(w io.Writer) error {
		_, err := io.WriteString(w, "hello, ")
		if err != nil {
			return err
		}
		_, err = io.WriteString(w, "world")
		return err
	})
	if err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "hello, world" {
		t.Errorf("content = %q, want %q", got, "hello, world")
	}
	if names := dirEntries(t, dir); len(names) != 1 || names[0] != "model.safetensors" {
		t.Errorf("directory holds %q, want only model.safetensors", names)
	}
}

func TestWriteFileReplacesExistingFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ckpt")
	if err := os.WriteFile(path, []byte("a much longer old content"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteBytes(path, []byte("new"), 0o644); err != nil {
		t.Fatalf("WriteBytes: %v", err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "new" {
		t.Errorf("content = %q, want %q", got, "new")
	}
}

func TestWriteFileErrorKeepsOriginal(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ckpt")
	if err := os.WriteFile(path, []byte("original"), 0o644); err != nil {
		t.Fatal(err)
	}
	errDiskFull := errors.New("disk full")
	err := WriteFile(path, 0o644, func(w io.Writer) error {
		// More than the buffer, so part of the new content has reached the temporary file.
		if _, err := w.Write(make([]byte, 3*bufferSize)); err != nil {
			return err
		}
		return errDiskFull
	})
	if !errors.Is(err, errDiskFull) {
		t.Fatalf("WriteFile error = %v, want it to wrap %v", err, errDiskFull)
	}
	if want := "atomicfile: write " + path + ": disk full"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "original" {
		t.Errorf("content after failed write = %q, want %q", got, "original")
	}
	if names := dirEntries(t, dir); len(names) != 1 || names[0] != "ckpt" {
		t.Errorf("directory holds %q, want only ckpt (no temporary files)", names)
	}
}

func TestWriteFilePanicLeavesNoTemporaryFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ckpt")
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("write's panic did not propagate")
			}
		}()
		WriteFile(path, 0o644, func(w io.Writer) error { panic("boom") })
	}()
	if names := dirEntries(t, dir); len(names) != 0 {
		t.Errorf("directory holds %q, want nothing", names)
	}
}

func TestWriteFileAppliesPerm(t *testing.T) {
	dir := t.TempDir()
	for _, perm := range []os.FileMode{0o600, 0o640, 0o644} {
		path := filepath.Join(dir, "f"+perm.String())
		if err := WriteBytes(path, []byte("x"), perm); err != nil {
			t.Fatalf("WriteBytes(perm %v): %v", perm, err)
		}
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Perm(); got != perm {
			t.Errorf("mode = %v, want %v", got, perm)
		}
	}
}

func TestWriteFileMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no-such-dir", "ckpt")
	err := WriteBytes(path, []byte("x"), 0o644)
	if err == nil {
		t.Fatal("WriteBytes into a missing directory succeeded")
	}
	if !strings.HasPrefix(err.Error(), "atomicfile: create temporary file for "+path+": ") {
		t.Errorf("error = %q, want it to name the target path", err)
	}
}
