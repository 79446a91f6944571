// Command resnet trains, evaluates and compares deep residual networks and their plain counterparts.
package main

import (
	"os"

	"resnet/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
