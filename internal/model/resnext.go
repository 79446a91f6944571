package model

// ResNeXt (Xie et al. 2017) and Wide ResNet (Zagoruyko and Komodakis 2016) as torchvision builds them:
// the ImageNet ResNet with wider bottlenecks, whose 3x3 convolution ResNeXt runs in groups. Parameter
// names are ResNet's, as in torchvision's state_dict.

import (
	"fmt"
	"strings"
)

// ResNeXtSpec is resnext<depth>_<groups>x<width>d: resnet<depth> whose bottlenecks have their 3x3
// convolution in groups of width channels (torchvision's groups and width_per_group).
func ResNeXtSpec(depth, groups, width int) (Spec, error) {
	if groups < 1 || width < 1 {
		return Spec{}, fmt.Errorf("model: ResNeXt cardinality and group width must be >= 1 (got %dx%dd)", groups, width)
	}
	s, err := widerSpec(depth)
	s.Name = fmt.Sprintf("resnext%d_%dx%dd", depth, groups, width)
	s.Groups, s.WidthPerGroup = groups, width
	return s, err
}

// WideResNetSpec is wide_resnet<depth>_<factor>: resnet<depth> with bottlenecks factor times wider (their
// output width unchanged), torchvision's width_per_group = 64 * factor.
func WideResNetSpec(depth, factor int) (Spec, error) {
	if factor < 1 {
		return Spec{}, fmt.Errorf("model: Wide ResNet width factor must be >= 1 (got %d)", factor)
	}
	s, err := widerSpec(depth)
	s.Name = fmt.Sprintf("wide_resnet%d_%d", depth, factor)
	s.WidthPerGroup = 64 * factor
	return s, err
}

// widerSpec is the ResNet that ResNeXt and Wide ResNet widen: a bottleneck one.
func widerSpec(depth int) (Spec, error) {
	s, err := ImageNetSpec(depth, true)
	if err == nil && s.Block != Bottleneck {
		err = fmt.Errorf("model: depth %d has basic blocks, which take no groups or widths; want 50, 101 or 152", depth)
	}
	return s, err
}

// parseResNeXtWidth reads <groups>x<width>d.
func parseResNeXtWidth(v string) (groups, width int, err error) {
	g, w, ok := strings.Cut(strings.TrimSuffix(v, "d"), "x")
	groups, okG := parseDepth(g)
	width, okW := parseDepth(w)
	if !ok || !okG || !okW || !strings.HasSuffix(v, "d") {
		return 0, 0, fmt.Errorf("must be resnext<depth>_<groups>x<width>d, such as resnext50_32x4d")
	}
	return groups, width, nil
}

// registerWider adds resnext and wide_resnet to the name table with torchvision's members.
func registerWider() {
	depths := []int{50, 101}
	const rule = "one of 50, 101"
	register(&family{prefix: "resnext", residual: true, depths: depths, rule: rule,
		variants: map[int][]string{50: {"32x4d"}, 101: {"32x8d", "64x4d"}},
		buildVariant: func(depth int, v string) (Spec, error) {
			g, w, err := parseResNeXtWidth(v)
			if err != nil {
				return Spec{}, err
			}
			return ResNeXtSpec(depth, g, w)
		}})
	register(&family{prefix: "wide_resnet", aliases: []string{"wide_res"}, residual: true, depths: depths,
		rule: rule, variants: map[int][]string{50: {"2"}, 101: {"2"}},
		buildVariant: func(depth int, v string) (Spec, error) {
			f, ok := parseDepth(v)
			if !ok {
				return Spec{}, fmt.Errorf("must be wide_resnet<depth>_<factor>, such as wide_resnet50_2")
			}
			return WideResNetSpec(depth, f)
		}})
}
