// Package atomicfile replaces files so that a crash or an error mid-write never leaves a reader with a
// half-written file: the new content goes to a temporary file in the same directory, is synced to disk,
// and is then renamed over the target in one step.
package atomicfile

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
)

// bufferSize is large enough that checkpoint tensors are written in few system calls.
const bufferSize = 256 << 10

// WriteFile replaces the file at path with what write produces. write gets a buffered writer; WriteFile
// flushes it, syncs the file, sets its mode to perm (exactly perm: the umask is not applied), renames it
// over path and syncs the directory so the rename itself survives a crash.
//
// If write or any step before the rename fails (or write panics), the temporary file is removed and an
// existing file at path is left as it was. A symlink at path is replaced by a regular file, not followed.
func WriteFile(path string, perm os.FileMode, write func(w io.Writer) error) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if base == "" {
		return fmt.Errorf("atomicfile: %q names a directory, not a file", path)
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("atomicfile: create temporary file for %s: %w", path, err)
	}
	tmpPath := tmp.Name()
	renamed := false
	defer func() {
		if !renamed {
			tmp.Close() // a second Close after the one below only returns an error, which is moot here
			os.Remove(tmpPath)
		}
	}()

	buffered := bufio.NewWriterSize(tmp, bufferSize)
	if err := write(buffered); err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	if err := buffered.Flush(); err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", tmpPath, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		return fmt.Errorf("atomicfile: set mode of %s: %w", tmpPath, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("atomicfile: sync %s: %w", tmpPath, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("atomicfile: close %s: %w", tmpPath, err)
	}
	if err := os.Rename(tmpPath, path); err != nil {
		return fmt.Errorf("atomicfile: rename %s to %s: %w", tmpPath, path, err)
	}
	renamed = true
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("atomicfile: %s was replaced but the rename may not survive a crash: sync directory %s: %w", path, dir, err)
	}
	return nil
}

// WriteBytes replaces the file at path with data, atomically as WriteFile does.
func WriteBytes(path string, data []byte, perm os.FileMode) error {
	return WriteFile(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// syncDir makes a rename in dir durable. Windows cannot open a directory for syncing, and NTFS journals
// renames itself, so there is nothing to do there.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	syncErr := d.Sync()
	closeErr := d.Close()
	if syncErr != nil {
		return syncErr
	}
	return closeErr
}
