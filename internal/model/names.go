package model

// The one table of architecture names. Every command, the config validator, `resnet models`, the "did
// you mean" hints and shell completion read it; a new family registers here (from its builder file's
// init) and nowhere else.

import (
	"sort"
	"strconv"
	"strings"

	"resnet/internal/suggest"
)

// family is a pattern of names: a prefix followed by a depth (resnet50, cifar_plain56), and in some
// families a width after it (resnext50_32x4d, wide_resnet50_2). A family of one net whose name carries no
// depth (inception_resnet_v2) is its prefix alone.
type family struct {
	prefix   string   // canonical prefix: resnet, cifar_plain
	aliases  []string // other accepted prefixes: res, cifar_res
	residual bool
	// depths are the depths the zoo lists. With valid nil they are also the only ones accepted.
	depths []int
	// valid, when set, accepts more depths than the listed ones (CIFAR: any 6n+2).
	valid func(depth int) bool
	// rule says which depths are accepted, for error messages: "one of 18, 34, 50, 101, 152".
	rule string
	// nUsage explains N in the family's usage line when valid is set: "N = 6n+2 (20, 32, 44, ...)".
	nUsage string
	build  func(depth int, residual bool) (Spec, error)
	// variants, in a family whose names carry a width after the depth, lists the zoo's widths per listed
	// depth; the first is what the name without one means (resnext101 is resnext101_32x8d). buildVariant
	// builds a depth with a width, one of these or any other its syntax takes, and replaces build.
	variants     map[int][]string
	buildVariant func(depth int, variant string) (Spec, error)
	// variantUsage names the width in the usage line of a family that takes any depth and any width
	// (cifar_wrnN_K).
	variantUsage string
	// fixed marks a family of one net named by the prefix alone, with no depth: build is called with
	// depth 0, and model.depth must be 0.
	fixed bool
}

// spec builds a depth of the family with a width ("" for the depth's first listed one, in a family that
// has widths).
func (f *family) spec(depth int, variant string) (Spec, error) {
	if f.buildVariant == nil {
		return f.build(depth, f.residual)
	}
	if variant == "" && len(f.variants[depth]) > 0 {
		variant = f.variants[depth][0]
	}
	return f.buildVariant(depth, variant)
}

// members lists the (depth, width) of the zoo's models of the family, width "" where it has none.
func (f *family) members() [][2]string {
	if f.fixed {
		return [][2]string{{"", ""}}
	}
	var out [][2]string
	for _, d := range f.depths {
		vs := f.variants[d]
		if f.buildVariant == nil {
			vs = []string{""}
		}
		for _, v := range vs {
			out = append(out, [2]string{strconv.Itoa(d), v})
		}
	}
	return out
}

func (f *family) accepts(depth int) bool {
	if f.valid != nil {
		return f.valid(depth)
	}
	for _, d := range f.depths {
		if d == depth {
			return true
		}
	}
	return false
}

// nearestDepth is the accepted depth closest to d (the smaller one on a tie), for "did you mean".
func (f *family) nearestDepth(d int) int {
	best := -1
	consider := func(c int) {
		if c > 0 && f.accepts(c) && (best < 0 || abs(c-d) < abs(best-d)) {
			best = c
		}
	}
	for _, c := range f.depths {
		consider(c)
	}
	if f.valid != nil {
		for delta := 0; delta <= 16 && best != d; delta++ {
			consider(d - delta)
			consider(d + delta)
		}
	}
	return best
}

// usage is how the family appears in a list of known names: resnet18/34/50/101/152, cifar_resnetN.
func (f *family) usage() string {
	if f.fixed {
		return f.prefix
	}
	if f.valid != nil && f.variantUsage != "" {
		return f.prefix + "N_" + f.variantUsage
	}
	if f.valid != nil {
		return f.prefix + "N"
	}
	var ds []string
	for _, m := range f.members() {
		if m[1] != "" {
			m[0] += "_" + m[1]
		}
		ds = append(ds, m[0])
	}
	return withDepth(f.prefix, strings.Join(ds, "/"))
}

// withDepth writes a name of the family with prefix: the depth follows the prefix, after an underscore
// when the prefix ends in a digit (resnetv2_50).
func withDepth(prefix, depth string) string {
	if n := len(prefix); n > 0 && prefix[n-1] >= '0' && prefix[n-1] <= '9' {
		return prefix + "_" + depth
	}
	return prefix + depth
}

var families []*family

// register adds a family of names. Prefixes must be unique across families.
func register(f *family) {
	for _, g := range families {
		for _, p := range append([]string{f.prefix}, f.aliases...) {
			if p == g.prefix || contains(g.aliases, p) {
				panic("model: architecture prefix " + p + " registered twice")
			}
		}
	}
	families = append(families, f)
}

// ArchError is an architecture name (or depth) that names no model. Field is the config key it belongs to
// ("arch" or "depth", under model.) and Reason says what is accepted, with a suggestion when one is close.
type ArchError struct {
	Field  string
	Reason string
}

func (e *ArchError) Error() string { return "model." + e.Field + " " + e.Reason }

// Arch is a parsed architecture name: its family and the depth the name carries (0 when it carries none,
// as in cifar_resnet, which then takes model.depth), and the width after the depth in the families that
// have one ("" when the name leaves it out).
type Arch struct {
	fam     *family
	Name    string // as given
	Depth   int
	Variant string // 32x4d of resnext50_32x4d, 2 of wide_resnet50_2
}

// Family is the name pattern's canonical prefix: resnet, plain, cifar_resnet, resnext, wide_resnet.
func (a Arch) Family() string { return a.fam.prefix }

// ParseArch reads an architecture name. Case, '-' and a separator before the depth are free: resnet50,
// ResNet-50, resnet_50 and the short form res50 name one model; cifar_res56 is cifar_resnet56. A width
// after the depth is separated by '_' (or '-'); without one a name means the zoo's first of its depth:
// resnext50 is resnext50_32x4d, wide_resnet50 is wide_resnet50_2.
func ParseArch(name string) (Arch, error) {
	n := normalizeName(name)
	for _, p := range prefixesLongestFirst() {
		rest, ok := strings.CutPrefix(n, p.prefix)
		if !ok {
			continue
		}
		rest = strings.TrimPrefix(rest, "_")
		if rest == "" {
			return Arch{fam: p.fam, Name: name}, nil
		}
		if p.fam.fixed {
			continue // a longer name that only starts like this one
		}
		depth, variant := rest, ""
		if p.fam.buildVariant != nil {
			depth, variant, _ = strings.Cut(rest, "_")
		}
		if d, ok := parseDepth(depth); ok {
			a := Arch{fam: p.fam, Name: name, Depth: d, Variant: variant}
			if !p.fam.accepts(d) {
				return a, &ArchError{Field: "arch", Reason: "depth must be " + p.fam.rule + " (got " +
					strconv.Quote(name) + ")" + didYouMean(p.fam.prefix, p.fam.nearestDepth(d))}
			}
			if variant != "" {
				if _, err := p.fam.buildVariant(d, variant); err != nil {
					return a, &ArchError{Field: "arch", Reason: err.Error() + " (got " + strconv.Quote(name) + ")"}
				}
			}
			return a, nil
		}
	}
	reason := "must be a known architecture (got " + strconv.Quote(name) + "; known: " + KnownNames() + ")"
	if s := closestName(n); s != "" {
		reason += "; did you mean " + s + "?"
	}
	return Arch{}, &ArchError{Field: "arch", Reason: reason}
}

// Spec builds the architecture's spec. depth, when not 0, replaces the depth of the name (model.depth:
// the cifar_resnet20 recipe with depth 56 trains cifar_resnet56).
func (a Arch) Spec(depth int) (Spec, error) {
	if a.fam.fixed {
		if depth != 0 {
			return Spec{}, &ArchError{Field: "depth", Reason: "must be 0 for " + a.fam.prefix + ", whose name carries no depth (got " +
				strconv.Itoa(depth) + ")"}
		}
		return a.fam.build(0, a.fam.residual)
	}
	d := a.Depth
	if depth != 0 {
		if !a.fam.accepts(depth) {
			return Spec{}, &ArchError{Field: "depth", Reason: "must be " + a.fam.rule + " for " + a.fam.prefix +
				", or 0 for the arch's own (got " + strconv.Itoa(depth) + ")" + didYouMean("", a.fam.nearestDepth(depth))}
		}
		d = depth
	}
	if d == 0 {
		return Spec{}, &ArchError{Field: "depth", Reason: "must be set to " + a.fam.rule + " when model.arch is " + a.Name}
	}
	return a.fam.spec(d, a.Variant)
}

// Resolve is ParseArch followed by Spec: the model section's arch and depth to a spec.
func Resolve(arch string, depth int) (Spec, error) {
	a, err := ParseArch(arch)
	if err != nil {
		return Spec{}, err
	}
	return a.Spec(depth)
}

// Lookup resolves a full zoo name (resnet50, res50, ResNet-50, cifar_res56, ...).
func Lookup(name string) (Spec, error) { return Resolve(name, 0) }

// CanonicalName is the zoo's spelling of a model name (res34 and ResNet-34 are resnet34), and whether name
// names a model with its depth.
func CanonicalName(name string) (string, bool) {
	s, err := Lookup(name)
	if err != nil {
		return name, false
	}
	return s.Name, true
}

// Zoo lists the named models in the order their families registered.
func Zoo() []Spec {
	var out []Spec
	for _, f := range families {
		for _, m := range f.members() {
			d, _ := strconv.Atoi(m[0])
			s, err := f.spec(d, m[1])
			if err != nil {
				panic(err) // a registered depth that does not build is a bug in the table
			}
			out = append(out, s)
		}
	}
	return out
}

// Names lists the zoo's names, sorted: what `resnet models`, hints and shell completion offer.
func Names() []string {
	var names []string
	for _, s := range Zoo() {
		names = append(names, s.Name)
	}
	sort.Strings(names)
	return names
}

// KnownNames describes the accepted names in one line, for error messages.
func KnownNames() string {
	var b strings.Builder
	for i, f := range families {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(f.usage())
		if f.nUsage != "" && (i+1 == len(families) || families[i+1].nUsage != f.nUsage) {
			b.WriteString(" with " + f.nUsage)
		}
	}
	b.WriteString("; or a name without its depth together with model.depth")
	return b.String()
}

type prefixEntry struct {
	prefix string
	fam    *family
}

func prefixesLongestFirst() []prefixEntry {
	var ps []prefixEntry
	for _, f := range families {
		ps = append(ps, prefixEntry{f.prefix, f})
		for _, a := range f.aliases {
			ps = append(ps, prefixEntry{a, f})
		}
	}
	sort.SliceStable(ps, func(i, j int) bool { return len(ps[i].prefix) > len(ps[j].prefix) })
	return ps
}

// normalizeName lower-cases a name and makes each run of separators ('-', '_', ' ') one '_', so that
// ResNet-50 reads as resnet_50, CIFAR-DenseNet-BC-100-k12 as cifar_densenet_bc_100_k12 and
// Inception-ResNet - v2 as inception_resnet_v2.
func normalizeName(name string) string {
	n := strings.ToLower(strings.TrimSpace(name))
	n = strings.NewReplacer("-", "_", " ", "_").Replace(n)
	for strings.Contains(n, "__") {
		n = strings.ReplaceAll(n, "__", "_")
	}
	return n
}

// parseDepth reads a depth written in decimal without sign or leading zeros.
func parseDepth(s string) (int, bool) {
	if s == "" || s[0] == '0' || strings.Trim(s, "0123456789") != "" || len(s) > 6 {
		return 0, false
	}
	d, err := strconv.Atoi(s)
	return d, err == nil
}

func didYouMean(prefix string, depth int) string {
	if depth <= 0 {
		return ""
	}
	return "; did you mean " + withDepth(prefix, strconv.Itoa(depth)) + "?"
}

// closestName is the zoo name nearest to n by edit distance, when it is close enough to be a typo.
func closestName(n string) string {
	best, d := suggest.Closest(n, Names())
	if best == "" || d > max(1, len(n)/4) {
		return ""
	}
	return best
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
