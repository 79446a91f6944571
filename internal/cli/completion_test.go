package cli

import (
	"strings"
	"testing"
)

// Completion offers the names of the one model table, the presets and the config keys.
func TestShellCompletion(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
		not  string
	}{
		{[]string{"bench", "--model", "cifar_plain"}, []string{"cifar_plain110", "cifar_plain20", "cifar_plain56"}, "cifar_resnet20"},
		{[]string{"train", "--config", "resnet1"}, []string{"resnet101", "resnet152", "resnet18"}, "resnet50"},
		{[]string{"train", "--set", "model.arch=plain"}, []string{"model.arch=plain18", "model.arch=plain34", "model.arch=plain152"}, "resnet"},
		{[]string{"train", "--set", "train.schedule.m"}, []string{"train.schedule.milestones="}, "train.lr"},
		{[]string{"compare", "cifar_resnet11"}, []string{"cifar_resnet110"}, "cifar_resnet1202"},
		{[]string{"eval", "--device", ""}, []string{"auto", "cpu", "cuda"}, "tpu"},
	} {
		code, out, errOut := runCLI(t, append([]string{"__complete"}, c.args...)...)
		lines := strings.Split(out, "\n")
		if code != 0 {
			t.Errorf("%v: exit %d: %s", c.args, code, errOut)
		}
		for _, w := range c.want {
			if !containsLine(lines, w) {
				t.Errorf("%v: completions lack %q:\n%s", c.args, w, out)
			}
		}
		if containsLine(lines, c.not) {
			t.Errorf("%v: completions offer %q:\n%s", c.args, c.not, out)
		}
	}
}

func containsLine(lines []string, s string) bool {
	for _, l := range lines {
		if l == s {
			return true
		}
	}
	return false
}
