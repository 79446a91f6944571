//go:build !unix

package train

import (
	"errors"
	"fmt"
	"os"
	"strconv"
)

// lockFile creates path exclusively and writes the PID into it. Without flock a crashed process leaves the
// file behind; the error then says to delete it.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		b, _ := os.ReadFile(path)
		return nil, fmt.Errorf("%w (the lock file %s names process %s; delete it if that process is gone)", ErrRunInUse, path, string(b))
	}
	if err != nil {
		return nil, err
	}
	if _, err := f.WriteString(strconv.Itoa(os.Getpid())); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return f, nil
}
