//go:build !unix

package cli

import "os/exec"

// ownProcessGroup does nothing where process groups are not the unix ones.
func ownProcessGroup(*exec.Cmd) {}
