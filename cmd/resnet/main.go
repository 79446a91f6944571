// Command resnet trains, evaluates and compares deep residual networks and their plain counterparts.
package main

import (
	"os"
	"runtime/debug"

	"resnet/internal/cli"
)

// gcPercent is the garbage collector's target unless GOGC is set. The program's memory is a few large
// buffers without pointers, which a collection barely has to look at, and the only garbage is scratch
// replaced by a larger one while the first steps run: collecting at 20% of growth instead of Go's 100%
// keeps that garbage from adding to the peak memory, at no cost a step can measure.
const gcPercent = 20

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
