//go:build !unix

package cli

import "os/exec"

// workerAttrs does nothing where process groups are not the unix ones.
func workerAttrs(*exec.Cmd) {}
