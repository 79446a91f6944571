package cli

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
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

// Every test that docs/reliability.md cites as proof exists.
func TestReliabilityDocCitesRealTests(t *testing.T) {
	doc, err := os.ReadFile("../../docs/reliability.md")
	if err != nil {
		t.Fatal(err)
	}
	defined := map[string]bool{}
	err = filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		for _, m := range testFunc.FindAllStringSubmatch(string(b), -1) {
			defined[m[1]] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	cited := citedTest.FindAllStringSubmatch(string(doc), -1)
	for _, m := range cited {
		if !defined[m[1]] {
			t.Errorf("docs/reliability.md cites %s, which no test file defines", m[1])
		}
	}
	if len(cited) < 30 {
		t.Errorf("found %d cited tests; the document cites more", len(cited))
	}
}

var (
	testFunc  = regexp.MustCompile(`(?m)^func ((?:Test|Fuzz)\w+)\(`)
	citedTest = regexp.MustCompile("`((?:Test|Fuzz)\\w+)`")
)
