//go:build unix && !linux

package cli

import "syscall"

// endWithParent does nothing where the kernel cannot signal a process when its parent dies.
func endWithParent(*syscall.SysProcAttr) {}
