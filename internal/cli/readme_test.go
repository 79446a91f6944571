package cli

import (
	"os"
	"strings"
	"testing"
)

// Every command line of the README's CLI tour names a command that exists, with flags it takes and an
// accepted number of arguments.
func TestReadmeTourMatchesCommands(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, tour, ok := strings.Cut(string(b), "## CLI tour\n\n```\n")
	if !ok {
		t.Fatal("README.md has no CLI tour block")
	}
	tour, _, _ = strings.Cut(tour, "```")
	checked := 0
	for _, line := range strings.Split(tour, "\n") {
		line, _, _ = strings.Cut(line, "#")
		words := strings.Fields(line)
		if len(words) == 0 || words[0] != "resnet" {
			continue
		}
		root := newRoot(&env{stdout: &strings.Builder{}, stderr: &strings.Builder{}})
		cmd, rest, err := root.Find(words[1:])
		if err == nil && cmd == root {
			err = os.ErrNotExist
		}
		if err == nil {
			err = cmd.ParseFlags(rest)
		}
		if err == nil {
			err = cmd.ValidateArgs(cmd.Flags().Args())
		}
		if err != nil {
			t.Errorf("README: %q: %v", strings.TrimSpace(line), err)
		}
		checked++
	}
	if checked < 15 {
		t.Errorf("checked %d tour lines; the README's tour has more", checked)
	}
}
