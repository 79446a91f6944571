package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"resnet/internal/backend"
)

// version is set at link time: -ldflags "-X resnet/internal/cli.version=v0.1.0".
var version = "dev"

func newVersionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, the Go toolchain and the compiled-in backends",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			rev := ""
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" && len(s.Value) >= 12 {
						rev = " (" + s.Value[:12] + ")"
					}
				}
			}
			fmt.Fprintf(e.stdout, "resnet %s%s\n%s %s/%s\nbackends: %s\n", version, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH, strings.Join(backend.Names(), ", "))
			return nil
		},
	}
}
