package config_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"resnet/internal/config"
)

// FuzzLoad feeds the loader a YAML document, a --set entry and a RESNET_* variable. It must never panic;
// every problem is an error whose every line starts with "config: "; and a config it accepts is valid and
// reads back from its own YAML unchanged.
func FuzzLoad(f *testing.F) {
	f.Add([]byte("model:\n  arch: resnet50\ntrain:\n  lr: 0.1\n"), "train.epochs=3", "TRAIN_LR", "0.2")
	f.Add([]byte("train:\n  schedule:\n    milestones: [81, 122]\n"), "train.schedule.milestones=[5,1]", "SEED", "-1")
	f.Add([]byte("name: &a x\nseed: *a\n"), "model.arch=res50", "MODEL_DEPTH", "56")
	f.Add([]byte("train: [1, 2]\n"), "eval=5", "DATASET_AUGMENT", "maybe")
	f.Add([]byte("dataset:\n  name: cifar10\n  root: d\n  val_size: 5000\n  eval_split: val\n"), "=", "", "")
	f.Add([]byte("\xff\xfe: \"\n"), "train.lr=NaN", "TRAIN_MOMENTUM", "1e400")
	f.Add([]byte(""), "model.depth=20", "TRAIN_LRR", "1")
	f.Fuzz(func(t *testing.T, yaml []byte, set, envSuffix, envValue string) {
		if envSuffix != "" && !strings.ContainsAny(envSuffix, "=\x00") && !strings.Contains(envValue, "\x00") {
			t.Setenv("RESNET_"+envSuffix, envValue)
		}
		src := config.Source{Data: yaml, Label: "fuzz.yaml", UseEnv: true, Sets: []string{set}, Warn: func(string) {}}
		c, err := config.Load(src)
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "config: ") {
					t.Fatalf("error line %q does not start with \"config: \" (whole error: %v)", line, err)
				}
			}
			return
		}
		if err := config.Validate(c); err != nil {
			t.Fatalf("Load accepted a config that Validate rejects: %v", err)
		}
		out, err := c.YAML()
		if err != nil {
			t.Fatalf("YAML of an accepted config: %v", err)
		}
		again, err := config.Load(config.Source{Data: out, Label: "round trip"})
		if err != nil {
			t.Fatalf("the YAML of an accepted config does not load: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(again, c) {
			t.Fatalf("round trip changed the config:\n%+v\n%+v", c, again)
		}
	})
}

// Every RESNET_* variable that the program and its scripts read is a config key's or one of
// OtherVariables, so that none of them is ever warned about as unknown.
func TestOtherVariablesAreComplete(t *testing.T) {
	known := map[string]bool{}
	for _, v := range config.OtherVariables {
		known[v] = true
	}
	for _, k := range config.Keys() {
		known["RESNET_"+strings.ToUpper(strings.ReplaceAll(k, ".", "_"))] = true
	}
	name := regexp.MustCompile(`RESNET_[A-Z0-9_]*[A-Z0-9]`)
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			if d != nil && d.IsDir() && (d.Name() == ".git" || d.Name() == "bin" || d.Name() == "dist" || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return err
		}
		ext := filepath.Ext(path)
		if strings.HasSuffix(path, "_test.go") || !(ext == ".go" || ext == ".sh" || ext == ".py" || d.Name() == "Makefile" || d.Name() == "run") {
			return nil
		}
		b, err := os.ReadFile(path)
		for _, v := range name.FindAllString(string(b), -1) {
			if !known[v] {
				t.Errorf("%s reads %s, which is neither a config variable nor in config.OtherVariables", path, v)
				known[v] = true
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
