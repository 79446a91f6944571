package cli

// Shell completion (`resnet completion bash|zsh|fish|powershell`): flag values and arguments come from the
// same tables the commands check against: the model name table, the presets and the config schema.

import (
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"resnet/configs"
	"resnet/internal/config"
	"resnet/internal/model"
)

// flagCompletions completes a flag's value wherever a command has a flag of that name.
var flagCompletions = map[string]cobra.CompletionFunc{
	"model":  fixedCompletion(model.Names),
	"config": fixedCompletion(configs.Names),
	"base":   fixedCompletion(configs.Names),
	"device": fixedCompletion(func() []string { return []string{"auto", "cpu", "cuda"} }),
	"set":    completeSet,
}

// registerCompletions attaches the value completions to every command below root, and completes compare's
// arguments with presets and zoo names.
func registerCompletions(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for name, f := range flagCompletions {
			if c.LocalFlags().Lookup(name) != nil {
				// The only error is a second registration of the same flag, which this walk never makes.
				_ = c.RegisterFlagCompletionFunc(name, f)
			}
		}
		if c.Name() == "compare" {
			c.ValidArgsFunction = fixedCompletion(modelsAndPresets)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

func fixedCompletion(list func() []string) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return withPrefix(list(), toComplete), cobra.ShellCompDirectiveDefault
	}
}

// completeSet completes --set: the config keys followed by '=', and after model.arch= the zoo names.
func completeSet(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if key, _, ok := strings.Cut(toComplete, "="); ok {
		if key != "model.arch" {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, n := range model.Names() {
			out = append(out, key+"="+n)
		}
		return withPrefix(out, toComplete), cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, k := range config.Keys() {
		out = append(out, k+"=")
	}
	return withPrefix(out, toComplete), cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
}

// modelsAndPresets are the names compare takes: every preset and every zoo model, once each.
func modelsAndPresets() []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range append(configs.Names(), model.Names()...) {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func withPrefix(list []string, prefix string) []cobra.Completion {
	var out []cobra.Completion
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			out = append(out, s)
		}
	}
	return out
}
