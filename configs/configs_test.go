package configs

import (
	"sort"
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	names := Names()
	if !sort.StringsAreSorted(names) {
		t.Errorf("Names() not sorted: %v", names)
	}
	want := []string{
		"cifar_densenet_bc100_k12", "cifar_plain110", "cifar_plain20", "cifar_plain32", "cifar_plain44", "cifar_plain56",
		"cifar_preact_resnet1001", "cifar_preact_resnet110", "cifar_preact_resnet164",
		"cifar_resnet110", "cifar_resnet1202", "cifar_resnet20", "cifar_resnet32", "cifar_resnet44", "cifar_resnet56",
		"cifar_resnext29_8x64d", "cifar_wrn28_10", "cifar_wrn40_4", "compare_demo",
		"demo", "densenet121", "inception_resnet_v2", "plain18", "plain34", "resnet101", "resnet152", "resnet18", "resnet34",
		"resnet50", "resnet50_torchvision_recipe", "resnetv2_50",
		"resnext50_32x4d", "seresnet50", "wide_resnet50_2",
	}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("Names() = %v\nwant %v", names, want)
	}
}

func TestRead(t *testing.T) {
	a, ok := Read("resnet50")
	if !ok || !strings.Contains(string(a), "arch: resnet50") {
		t.Fatalf("Read(resnet50) = %q, %v", a, ok)
	}
	b, ok := Read("resnet50.yaml")
	if !ok || string(a) != string(b) {
		t.Errorf("Read(resnet50.yaml) differs from Read(resnet50)")
	}
	for _, name := range []string{"", "nope", "configs/resnet50", "../configs/resnet50.yaml", ".yaml", "resnet50.yml"} {
		if _, ok := Read(name); ok {
			t.Errorf("Read(%q) found a preset", name)
		}
	}
}
