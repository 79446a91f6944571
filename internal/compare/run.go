package compare

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"resnet/internal/atomicfile"
	"resnet/internal/backend"
	"resnet/internal/config"
	"resnet/internal/train"
)

// Options configure Train.
type Options struct {
	Device   backend.Device
	Out      io.Writer // progress
	Terminal bool
	Stop     <-chan struct{}
	Version  string // the program's, for each run's reproducibility.json
}

// Train brings every entry's run to its last epoch: a finished run is reused, an unfinished one resumed
// from its newest checkpoint, a missing one trained. A run directory that holds a run of another config
// is an error rather than being mixed into the comparison.
func Train(entries []*Entry, opt Options) error {
	for i, e := range entries {
		st, err := RunState(e.RunDir, e.Config.Train.Epochs)
		if err != nil {
			return err
		}
		if st != NoRun {
			if err := sameRecipe(e); err != nil {
				return err
			}
		}
		switch st {
		case Finished:
			fmt.Fprintf(opt.Out, "[%d/%d] %s: finished run in %s, reused\n", i+1, len(entries), e.Name, e.RunDir)
			continue
		case Unfinished:
			fmt.Fprintf(opt.Out, "[%d/%d] %s: resuming %s\n", i+1, len(entries), e.Name, e.RunDir)
		default:
			fmt.Fprintf(opt.Out, "[%d/%d] %s: training (%s params, %.1f MMACs) in %s\n", i+1, len(entries), e.Name, thousands(e.Stats.Params), float64(e.Stats.MACs)/1e6, e.RunDir)
		}
		_, err = train.Run(train.Options{
			Config: e.Config, ConfigYAML: e.YAML, RunDir: e.RunDir, Resume: st == Unfinished,
			Device: opt.Device, Out: opt.Out, Terminal: opt.Terminal, Stop: opt.Stop, Version: opt.Version,
		})
		if err != nil {
			return fmt.Errorf("compare %s: %w", e.Name, err)
		}
	}
	return nil
}

// Write renders the summary into dir: curves.png, curves.svg, summary.md and summary.json, each written
// atomically.
func Write(dir string, s *Summary) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	png, svg, err := Curves(s)
	if err != nil {
		return err
	}
	js, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{
		"curves.png": png, "curves.svg": svg, "summary.md": s.Markdown(), "summary.json": append(js, '\n'),
	} {
		if err := atomicfile.WriteBytes(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// sameRecipe checks that the run in e.RunDir was trained with e's config, up to the number of epochs (a
// finished comparison can be extended by more epochs: its runs resume).
func sameRecipe(e *Entry) error {
	path := train.NewRunDir(e.RunDir).ConfigPath()
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("compare %s: %s holds a run without a readable config.yaml: %w", e.Arg, e.RunDir, err)
	}
	old, err := config.Load(config.Source{Data: data, Label: path})
	if err != nil {
		return fmt.Errorf("compare %s: %w", e.Arg, err)
	}
	old.Train.Epochs = e.Config.Train.Epochs
	oldYAML, err := old.YAML()
	if err != nil {
		return err
	}
	if !bytes.Equal(oldYAML, e.YAML) {
		return fmt.Errorf("compare %s: %s holds a run of a different config (compare its config.yaml with `resnet train --dry-run`); remove it or point --runs elsewhere", e.Arg, e.RunDir)
	}
	return nil
}
