package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"resnet/configs"
	"resnet/internal/config"
	"resnet/internal/model"
	"resnet/internal/sysmem"
	"resnet/internal/train"
)

type modelsOptions struct {
	json bool
}

// modelInfo is one row of 'resnet models'.
type modelInfo struct {
	Name string `json:"name"`
	// Arch is the family of names (resnet, plain, resnext, wide_resnet, cifar_resnet, cifar_plain); Family
	// is the input regime (imagenet, cifar).
	Arch     string `json:"arch"`
	Family   string `json:"family"`
	Residual bool   `json:"residual"`
	Depth    int    `json:"depth"`
	// Block is the unit kind (basic, bottleneck), or for a net of its own topology that topology
	// (inception_resnet).
	Block  string `json:"block"`
	Groups int    `json:"groups"`
	// WidthPerGroup is torchvision's width_per_group: 64 for the ResNets, 4 or 8 for ResNeXt, 128 for Wide
	// ResNet-2.
	WidthPerGroup int    `json:"width_per_group"`
	Shortcut      string `json:"shortcut"`
	Params        int64  `json:"params"`
	MACs          int64  `json:"macs"`
	Input         int    `json:"input_size"`
	Classes       int    `json:"num_classes"`
	// SEReduction is the squeeze-and-excitation reduction ratio of an SE net (omitted for the others).
	SEReduction int `json:"se_reduction,omitempty"`
	// Group is the family the model belongs to (ResNeXt, Wide ResNet, ...) and Paper the paper that
	// introduced it.
	Group string `json:"group"`
	Paper string `json:"paper"`
}

func newModelsCmd(e *env) *cobra.Command {
	o := &modelsOptions{}
	cmd := &cobra.Command{
		Use:   "models",
		Short: "List the model zoo (parameters, MACs) and the shipped config presets",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return runModels(e.stdout, o)
		},
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print a JSON array, one object per model")
	return cmd
}

func zooInfo() ([]modelInfo, error) {
	var out []modelInfo
	for _, s := range model.Zoo() {
		st, err := model.Describe(s)
		if err != nil {
			return nil, err
		}
		a, err := model.ParseArch(s.Name)
		if err != nil {
			return nil, err
		}
		g, ok := a.Group()
		if !ok {
			return nil, fmt.Errorf("model %s belongs to no family of the listing", s.Name)
		}
		out = append(out, modelInfo{
			Name: s.Name, Arch: a.Family(), Family: s.Family, Residual: s.Residual, Depth: s.Depth(), Block: blockName(s),
			Groups: max(s.Groups, 1), WidthPerGroup: s.BottleneckWidth(64) / max(s.Groups, 1),
			Shortcut: shortcutName(s), Params: st.Params, MACs: st.MACs, Input: s.InputSize, Classes: s.NumClasses,
			SEReduction: s.SEReduction, Group: g.Name, Paper: g.Paper,
		})
	}
	return out, nil
}

func shortcutName(s model.Spec) string {
	switch {
	case !s.Residual:
		return "none"
	case s.Shortcut == 0: // a topology's own units, which add their input as it is (Inception-ResNet)
		return "identity"
	}
	return string(s.Shortcut)
}

func blockName(s model.Spec) string {
	if s.Block == "" {
		return s.Topology
	}
	return string(s.Block)
}

func runModels(w io.Writer, o *modelsOptions) error {
	infos, err := zooInfo()
	if err != nil {
		return err
	}
	if o.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(infos)
	}
	// One table for every row, so the columns line up across families; each family's rows then follow its
	// heading.
	var table strings.Builder
	tw := tabwriter.NewWriter(&table, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "model\tarch\tfamily\tdepth\tblock\tshortcut\tparams\tGMACs\t")
	for _, m := range infos {
		block := m.Block
		if m.SEReduction > 0 {
			block += "+SE"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%.3f\t\n", m.Name, m.Arch, m.Family, m.Depth, block, m.Shortcut, thousands(m.Params), float64(m.MACs)/1e9)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSuffix(table.String(), "\n"), "\n")
	fmt.Fprintln(w, lines[0])
	for _, g := range model.Groups() {
		heading := false
		for i, m := range infos {
			if m.Group != g.Name {
				continue
			}
			if !heading {
				fmt.Fprintf(w, "\n%s (%s)\n", g.Name, g.Paper)
				heading = true
			}
			fmt.Fprintln(w, lines[i+1])
		}
	}
	fmt.Fprintf(w, "\nCIFAR nets take any depth 6n+2: model.arch cifar_resnet with model.depth, or cifar_resnetN.\n")
	fmt.Fprintf(w, "\npresets (resnet train --config NAME):\n  %s\n", strings.Join(configs.Names(), "\n  "))
	return nil
}

// printSummary writes the model summary of a config: per-stage output shapes, parameters and MACs.
func printSummary(w io.Writer, cfg config.Config) error {
	classes, size := train.InputFor(cfg.Dataset)
	spec, err := train.SpecFor(cfg.Model, classes, size)
	if err != nil {
		return err
	}
	st, err := model.Describe(spec)
	if err != nil {
		return train.ExplainInputSize(err, cfg.Dataset)
	}
	shortcut := ", shortcut " + shortcutName(spec)
	if spec.Topology != "" && !spec.Residual { // a net of its own topology without residual units (DenseNet)
		shortcut = ""
	}
	fmt.Fprintf(w, "# model %s: %s, depth %d, %s%s, input %dx%dx%d, %d classes\n",
		spec.Name, spec.Wiring(), spec.Depth(), spec.Units(), shortcut, spec.InChannels, spec.InputSize, spec.InputSize, spec.NumClasses)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "stage\tblocks\toutput\tparams\tMMACs\t")
	for _, s := range st.Stages {
		fmt.Fprintf(tw, "%s\t%d\t%dx%dx%d\t%s\t%.2f\t\n", s.Name, s.Blocks, s.C, s.H, s.W, thousands(s.Params), float64(s.MACs)/1e6)
	}
	fmt.Fprintf(tw, "total\t\t\t%s\t%.2f\t\n", thousands(st.Params), float64(st.MACs)/1e6)
	return tw.Flush()
}

// printMemory writes the estimate of a run's memory and the limit it is checked against, and refuses the
// run as training would when it does not fit. Without a GPU to ask (the dry run opens no device), a run on
// cuda or auto is checked for its host part only.
func printMemory(e *env, cfg config.Config) error {
	classes, size := train.InputFor(cfg.Dataset)
	spec, err := train.SpecFor(cfg.Model, classes, size)
	if err != nil {
		return err
	}
	b := sysmem.Budget{Host: e.hostLimit()}
	if cfg.Device != "cpu" {
		b.Device = &sysmem.Limit{}
	}
	r := train.NewRunMemory(cfg, spec, nil)
	need, err := r.Need(train.WorkspaceImages(b))
	if err != nil {
		return train.ExplainInputSize(err, cfg.Dataset)
	}
	batch := fmt.Sprintf("batch %d", cfg.Train.BatchSize)
	if k := cfg.Train.AccumulateSteps; k > 1 {
		batch += fmt.Sprintf(" in %d micro-batches of %d", k, cfg.Train.MicroBatch())
	}
	if cfg.Eval.BatchSize > cfg.Train.MicroBatch() {
		// The net's buffers are sized for the larger evaluation batch, which training shares.
		batch += fmt.Sprintf(", its buffers sized for the evaluation batch of %d", cfg.Eval.BatchSize)
	}
	fmt.Fprintf(e.stdout, "# memory: about %s for %s, %s (%s)\n", sysmem.Format(need.Total()), r.What(), batch, need)
	switch {
	case !b.Host.Known():
		fmt.Fprintln(e.stdout, "# limit: unknown (no cgroup limit or MemAvailable to read); not checked")
	case b.Device != nil:
		fmt.Fprintf(e.stdout, "# limit: %s for the data loaders and host copies; the network's share is checked when training starts, against a GPU's free memory or this limit on the CPU\n", b.Host)
	default:
		fmt.Fprintf(e.stdout, "# limit: %s\n", b.Host)
	}
	return r.Check(b)
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
