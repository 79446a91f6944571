package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"resnet/internal/config"
)

// Every config key that docs/distributed.md names, in a --set flag (also as a pod's argument list) or in
// backquotes, is a key of the config.
func TestDistributedDocConfigKeysExist(t *testing.T) {
	doc, err := os.ReadFile("../../docs/distributed.md")
	if err != nil {
		t.Fatal(err)
	}
	keys := config.Keys()
	named := 0
	for _, re := range []*regexp.Regexp{setFlagKey, quotedKey} {
		for _, m := range re.FindAllSubmatch(doc, -1) {
			named++
			if !slices.Contains(keys, string(m[1])) {
				t.Errorf("docs/distributed.md names %s, which is not a config key", m[1])
			}
		}
	}
	if named < 20 {
		t.Errorf("found %d config keys in docs/distributed.md; it names more", named)
	}
}

var (
	setFlagKey = regexp.MustCompile(`--set,? ([a-z0-9_]+(?:\.[a-z0-9_]+)+)=`)
	quotedKey  = regexp.MustCompile("`((?:model|dataset|train|eval|checkpoint|cuda)(?:\\.[a-z0-9_]+)+)`")
)

// The scaling model's tables in docs/benchmarks.md are what scripts/scaling_model.py makes of the zoo as
// `resnet models --json` gives it now, so a model's changed parameter count cannot leave them behind.
func TestScalingModelTablesAreCurrent(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3 to run scripts/scaling_model.py")
	}
	var zoo bytes.Buffer
	if err := runModels(&zoo, &modelsOptions{json: true}); err != nil {
		t.Fatal(err)
	}
	models := filepath.Join(t.TempDir(), "models.json")
	if err := os.WriteFile(models, zoo.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(python, "../../scripts/scaling_model.py", "--check", "../../docs/benchmarks.md", models).CombinedOutput()
	if err != nil {
		t.Errorf("%v: %s(regenerate: go run ./cmd/resnet models --json | python3 scripts/scaling_model.py)", err, out)
	}
}
