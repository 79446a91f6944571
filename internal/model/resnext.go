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

// CIFARResNeXtSpec is cifar_resnext<depth>_<groups>x<width>d, the ResNeXt paper's CIFAR network (its
// section 5.3): a 3x3 stem of 64 channels, three stages of (depth-2)/9 bottlenecks of output widths 256,
// 512 and 1024 whose grouped 3x3 convolutions are groups x width channels wide in the first stage and
// twice as wide in each next one, projection shortcuts where the shape changes, strides 1, 2, 2, 32x32
// input and 10 classes. ResNeXt-29 8x64d has 34.4M parameters and 16x64d 68.1M, as the paper's Table 7.
func CIFARResNeXtSpec(depth, groups, width int) (Spec, error) {
	if depth < 11 || (depth-2)%9 != 0 {
		return Spec{}, fmt.Errorf("model: CIFAR ResNeXt depth must be 9n+2 with n >= 1, e.g. 29 (got %d)", depth)
	}
	if groups < 1 || width < 1 {
		return Spec{}, fmt.Errorf("model: ResNeXt cardinality and group width must be >= 1 (got %dx%dd)", groups, width)
	}
	n := (depth - 2) / 9
	return Spec{
		Name:          fmt.Sprintf("cifar_resnext%d_%dx%dd", depth, groups, width),
		Family:        CIFAR,
		Block:         Bottleneck,
		Layers:        []int{n, n, n},
		Widths:        []int{64, 128, 256},
		Residual:      true,
		Shortcut:      'B',
		Groups:        groups,
		WidthPerGroup: width,
		StemWidth:     64,
		InChannels:    3,
		InputSize:     32,
		NumClasses:    10,
	}, nil
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
	register(&family{prefix: "cifar_resnext", residual: true, depths: []int{29}, rule: "29",
		variants: map[int][]string{29: {"8x64d", "16x64d"}},
		buildVariant: func(depth int, v string) (Spec, error) {
			g, w, err := parseResNeXtWidth(v)
			if err != nil {
				return Spec{}, err
			}
			return CIFARResNeXtSpec(depth, g, w)
		}})
}
