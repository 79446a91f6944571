package model

// Wide ResNets on CIFAR (Zagoruyko and Komodakis 2016, "Wide Residual Networks"): pre-activation basic
// units (preact.go) of widths 16k, 32k, 64k after a 3x3 stem of 16, (depth-4)/6 units per group, 1x1
// projection shortcuts where the width or the stride changes, fed from the first unit's BN-ReLU of the
// input as the paper's code does, and dropout between a unit's two convolutions (Spec.Dropout).

import (
	"fmt"
	"strconv"
)

// CIFARWideSpec is cifar_wrn<depth>_<k>, WRN-depth-k: depth 6n+4 with n >= 1 (the paper counts the three
// projections), width factor k >= 1, 32x32 input, 10 classes. WRN-28-10 has 36.5M parameters and
// WRN-40-4 8.9M, as the paper's Table 1 and 4.
func CIFARWideSpec(depth, k int) (Spec, error) {
	if !wideCIFARDepth(depth) {
		return Spec{}, fmt.Errorf("model: Wide ResNet depth must be %s (got %d)", wideCIFARRule, depth)
	}
	if k < 1 {
		return Spec{}, fmt.Errorf("model: Wide ResNet width factor must be >= 1 (got %d)", k)
	}
	n := (depth - 4) / 6
	return Spec{
		Name: "cifar_wrn" + strconv.Itoa(depth) + "_" + strconv.Itoa(k), Family: CIFAR, Block: Basic,
		Layers: []int{n, n, n}, Widths: []int{16 * k, 32 * k, 64 * k}, Residual: true, Shortcut: 'B',
		StemWidth: 16, InChannels: 3, InputSize: 32, NumClasses: 10, PreAct: true, WidenFactor: k,
	}, nil
}

const wideCIFARRule = "6n+4 with n >= 1 (10, 16, 22, 28, 40, ...)"

func wideCIFARDepth(d int) bool { return d >= 10 && (d-4)%6 == 0 }

// registerWide adds cifar_wrn<depth>_<k> to the name table: any depth 6n+4 and width factor k, the zoo
// listing the paper's WRN-28-10 and WRN-40-4.
func registerWide() {
	register(&family{prefix: "cifar_wrn", aliases: []string{"cifar_wide_resnet"}, residual: true,
		depths: []int{28, 40}, valid: wideCIFARDepth, rule: wideCIFARRule,
		nUsage: "N = 6n+4 and K the width factor", variantUsage: "K",
		variants: map[int][]string{28: {"10"}, 40: {"4"}},
		buildVariant: func(depth int, v string) (Spec, error) {
			k, ok := parseDepth(v)
			if !ok {
				return Spec{}, fmt.Errorf("must be cifar_wrn<depth>_<k>, such as cifar_wrn28_10 (k the width factor)")
			}
			return CIFARWideSpec(depth, k)
		}})
}
