// Package configs holds the shipped run presets (YAML), embedded in the binary so that
// `resnet train --config resnet50` works from any directory.
package configs

import (
	"embed"
	"io/fs"
	"sort"
	"strings"
)

//go:embed *.yaml
var presets embed.FS

// Names lists the presets, sorted, without the .yaml extension.
func Names() []string {
	entries, _ := fs.ReadDir(presets, ".")
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".yaml"); ok && !e.IsDir() {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// Read returns the YAML of a preset named "resnet50" or "resnet50.yaml", and whether it exists.
func Read(name string) ([]byte, bool) {
	name = strings.TrimSuffix(name, ".yaml")
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return nil, false
	}
	data, err := presets.ReadFile(name + ".yaml")
	if err != nil {
		return nil, false
	}
	return data, true
}
