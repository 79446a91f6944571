//go:build unix

package cli

import (
	"os/exec"
	"syscall"
)

// workerAttrs starts cmd in a process group of its own, out of reach of the terminal's signals (the
// launcher forwards them), and, where the system can, ends it with the launcher (endWithParent).
func workerAttrs(cmd *exec.Cmd) {
	a := &syscall.SysProcAttr{Setpgid: true}
	endWithParent(a)
	cmd.SysProcAttr = a
}
