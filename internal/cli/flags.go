package cli

// What several commands share: the convenience flags that stand for --set entries, and opening the device.

import (
	"fmt"
	"strconv"

	"github.com/spf13/pflag"

	"resnet/internal/backend"
	"resnet/internal/config"
)

// configFlags are --set and the flags that are short for a --set entry. They rank with --set, above the
// environment; --set entries given explicitly come last, so they win over the short flags.
type configFlags struct {
	sets      []string
	device    string
	epochs    int
	batchSize int
	seed      int64
}

// bind adds the flags; target says whose config they change ("the run", "every model").
func (o *configFlags) bind(f *pflag.FlagSet, target string) {
	f.StringArrayVar(&o.sets, "set", nil, "override a config key of "+target+", e.g. --set train.lr=0.05 (repeatable)")
	f.StringVar(&o.device, "device", "", "device: auto, cpu or cuda (overrides config key device)")
	f.IntVar(&o.epochs, "epochs", 0, "number of epochs (overrides train.epochs)")
	f.IntVar(&o.batchSize, "batch-size", 0, "mini-batch size (overrides train.batch_size)")
	f.Int64Var(&o.seed, "seed", 0, "random seed (overrides seed)")
}

// toSets turns the explicitly given short flags into --set entries, followed by the --set entries.
func (o *configFlags) toSets(changed func(string) bool) []string {
	var sets []string
	if changed("device") {
		sets = append(sets, "device="+o.device)
	}
	if changed("epochs") {
		sets = append(sets, "train.epochs="+strconv.Itoa(o.epochs))
	}
	if changed("batch-size") {
		sets = append(sets, "train.batch_size="+strconv.Itoa(o.batchSize))
	}
	if changed("seed") {
		sets = append(sets, "seed="+strconv.FormatInt(o.seed, 10))
	}
	return append(sets, o.sets...)
}

// deviceOptions are the device settings of a config's cuda section, which config.Load has validated.
func deviceOptions(c config.CUDAConfig) (backend.Options, error) {
	opt := backend.Options{Unfused: !c.Fuse, Nondeterministic: !c.Deterministic, Benchmark: c.Benchmark, Graphs: c.Graphs}
	var err error
	if opt.Precision, err = backend.ParsePrecision(c.Precision); err != nil {
		return opt, fmt.Errorf("config: cuda.precision: %w", err)
	}
	if opt.Layout, err = backend.ParseLayout(c.Layout); err != nil {
		return opt, fmt.Errorf("config: cuda.layout: %w", err)
	}
	return opt, nil
}

// openExplained opens devices; tests replace it to see the options a command opens its device with.
var openExplained = backend.OpenExplained

// openDevice opens the named device with the settings of a config's cuda section. When "auto" falls back to
// the CPU, the reason the GPU did not open is printed on stderr, once per process.
func openDevice(e *env, name string, c config.CUDAConfig) (backend.Device, error) {
	return openDeviceOrdinal(e, name, c, 0)
}

// openDeviceOrdinal is openDevice for the GPU of the given index, a data-parallel worker's local rank.
func openDeviceOrdinal(e *env, name string, c config.CUDAConfig, ordinal int) (backend.Device, error) {
	if e.openDevice != nil {
		return e.openDevice(name, ordinal)
	}
	opt, err := deviceOptions(c)
	if err != nil {
		return nil, err
	}
	opt.Ordinal = ordinal
	d, fallback, err := openExplained(name, opt)
	if err == nil && fallback != nil {
		e.fallbackOnce.Do(func() {
			fmt.Fprintf(e.stderr, "resnet: device auto: using the CPU (%v)\n", fallback)
		})
	}
	return d, err
}
