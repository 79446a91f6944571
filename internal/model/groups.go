package model

// The families of `resnet models`: each name pattern of the table in names.go belongs to one, listed with
// the paper that describes it.

// Group is a family of architectures: its name and the paper that introduced it.
type Group struct {
	Name  string `json:"name"`
	Paper string `json:"paper"`
}

// groups lists the families in the order `resnet models` prints them, each with the name patterns (family
// prefixes) it holds.
var groups = []struct {
	Group
	prefixes []string
}{
	{Group{"ResNet and its plain counterpart", `He et al. 2015, "Deep Residual Learning for Image Recognition"`},
		[]string{"resnet", "plain", "cifar_resnet", "cifar_plain"}},
	{Group{"Pre-activation ResNet", `He et al. 2016, "Identity Mappings in Deep Residual Networks"`},
		[]string{"resnetv2", "cifar_preact_resnet"}},
	{Group{"Wide ResNet", `Zagoruyko and Komodakis 2016, "Wide Residual Networks"`},
		[]string{"wide_resnet", "cifar_wrn"}},
	{Group{"ResNeXt", `Xie et al. 2017, "Aggregated Residual Transformations for Deep Neural Networks"`},
		[]string{"resnext", "cifar_resnext"}},
	{Group{"Squeeze-and-Excitation", `Hu et al. 2018, "Squeeze-and-Excitation Networks"`},
		[]string{"seresnet", "seresnext"}},
	{Group{"DenseNet", `Huang et al. 2017, "Densely Connected Convolutional Networks"`},
		[]string{"densenet", "cifar_densenet_bc"}},
	{Group{"Inception-ResNet", `Szegedy et al. 2017, "Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning"`},
		[]string{"inception_resnet_v2"}},
}

// Group is the family the architecture belongs to, and whether one is known.
func (a Arch) Group() (Group, bool) {
	for _, g := range groups {
		if contains(g.prefixes, a.fam.prefix) {
			return g.Group, true
		}
	}
	return Group{}, false
}

// Groups lists the families in the order `resnet models` prints them.
func Groups() []Group {
	out := make([]Group, len(groups))
	for i, g := range groups {
		out[i] = g.Group
	}
	return out
}
