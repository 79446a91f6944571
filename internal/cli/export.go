package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"resnet/internal/interop"
)

type exportOptions struct {
	checkpoint string
	out        string
}

func newExportCmd(e *env) *cobra.Command {
	o := &exportOptions{}
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write a checkpoint's weights as a PyTorch (torchvision) state_dict in safetensors format",
		Long: `export writes the weights and BatchNorm buffers (running_mean, running_var, num_batches_tracked) of a
checkpoint under torchvision's state_dict names, without optimizer state, so that

    model = torchvision.models.resnet50()
    model.load_state_dict(safetensors.torch.load_file("model.safetensors"))

loads it with strict=True. CIFAR nets use the same naming pattern (conv1, bn1, layerN.i.conv1, ..., fc).`,
		Example: `  resnet export --checkpoint runs/resnet50 --out resnet50.safetensors
  resnet export --checkpoint runs/demo/checkpoints/step-000000624.safetensors --out demo.safetensors`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return runExport(e, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.checkpoint, "checkpoint", "", "run directory (its newest checkpoint) or checkpoint file")
	f.StringVar(&o.out, "out", "", "safetensors file to write")
	return cmd
}

func runExport(e *env, o *exportOptions) error {
	if o.checkpoint == "" || o.out == "" {
		return usageError{errors.New("--checkpoint and --out are required")}
	}
	x, err := interop.Export(o.checkpoint, o.out)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "exported %s (%d classes, step %d) from %s\nwrote %d tensors to %s\n",
		x.Spec.Name, x.Spec.NumClasses, x.Step, x.Checkpoint, x.Tensors, x.Out)
	return nil
}
