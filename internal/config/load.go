package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"resnet/configs"
	"resnet/internal/suggest"
)

// Source is what the CLI hands to Load.
type Source struct {
	// File is the --config value: a YAML file on disk or the name of a shipped preset ("resnet50",
	// "resnet50.yaml" or "configs/resnet50.yaml"). A file on disk wins over a preset of the same name.
	// Empty means built-in defaults only.
	File string
	// Data, when set, is the YAML itself (a checkpoint's embedded config) and File is not read; Label names
	// it in error messages.
	Data  []byte
	Label string
	// UseEnv reads the process environment's RESNET_* variables that name config keys (RESNET_TRAIN_LR
	// sets train.lr). Off for a run's own config (a checkpoint's), which the environment must not change.
	UseEnv bool
	// Warn, when set, hears what is allowed but probably not meant: an unknown RESNET_* variable, a config
	// file that sets nothing, milestones past the last epoch.
	Warn func(msg string)
	// Sets are --set entries, "key=value" with dotted keys: train.lr=0.05, model.arch=resnet50,
	// train.schedule.milestones=[81,122] (or 81,122). Later entries win.
	Sets []string
}

func (src Source) warn(msg string) {
	if src.Warn != nil {
		src.Warn(msg)
	}
}

// origin records which layer last set a key, so that errors can say where to fix it.
type origin struct {
	file string // label of the YAML file ...
	line int    // ... and the line of the key in it
	env  string // environment variable name
	set  string // the --set entry as given
}

func (o origin) String() string {
	switch {
	case o.set != "":
		return "(from --set " + printable(o.set) + ")"
	case o.env != "":
		return "(from " + o.env + ")"
	case o.file != "":
		return "in " + o.file + " line " + strconv.Itoa(o.line)
	}
	return ""
}

// printable is s, or s quoted when it holds characters that would break an error message's line.
func printable(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// Load resolves defaults < YAML file < RESNET_* environment < --set, decodes the result once into a
// Config and validates it. Errors name the key, what is allowed and where the value came from.
func Load(src Source) (Config, error) {
	name, label, data, err := resolveFile(src.File)
	if src.Data != nil {
		name, label, data, err = "default", src.Label, src.Data, nil
	}
	if err != nil {
		return Config{}, err
	}

	v := viper.New()
	def := Default()
	def.Name = name
	dv := reflect.ValueOf(def)
	for _, key := range keys.order {
		s := keys.settings[key]
		val := dv.FieldByIndex(s.index)
		if val.Kind() == reflect.Slice && val.IsNil() {
			val = reflect.MakeSlice(s.typ, 0, 0)
		}
		v.SetDefault(key, val.Interface())
	}

	// Each layer is checked and converted to the fields' types here, with line numbers and origins for
	// its errors, before the layers are merged. viper finds the files (search paths) and the environment
	// variables (RESNET_ prefix); its own YAML decoding is not used, since it would hand mapstructure raw
	// YAML (nulls, numbers where text is expected) without positions.
	origins := map[string]origin{}
	var errs []error
	if data != nil {
		fileValues, fileErrs := readYAML(data, label, origins)
		errs = append(errs, fileErrs...)
		if len(fileValues) == 0 && len(fileErrs) == 0 {
			src.warn("config: " + label + " sets no keys; the built-in defaults are used")
		}
		if err := v.MergeConfigMap(fileValues); err != nil {
			errs = append(errs, fmt.Errorf("config: %s: %w", label, err))
		}
	}
	if src.UseEnv {
		for _, w := range unknownEnv(os.Environ()) {
			src.warn(w)
		}
		envValues, envErrs := readEnv(origins)
		errs = append(errs, envErrs...)
		if err := v.MergeConfigMap(envValues); err != nil {
			errs = append(errs, fmt.Errorf("config: environment: %w", err))
		}
	}
	overrides, setErrs := readSets(src.Sets, origins)
	errs = append(errs, setErrs...)
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	for _, o := range overrides {
		v.Set(o.key, o.value)
	}

	var c Config
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		Result:      &c,
		TagName:     "mapstructure",
		ErrorUnused: true,
		// Every value already has its field's type; a mismatch here is a bug, not something to coerce.
		WeaklyTypedInput: false,
	})
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	if err := dec.Decode(v.AllSettings()); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	normalize(&c)

	fes, warnings := validate(c)
	for _, fe := range append(fes, warnings...) {
		if o, ok := origins[fe.Key]; ok {
			fe.Origin = o.String()
		}
	}
	if err := joinFieldErrors(fes); err != nil {
		return Config{}, err
	}
	for _, w := range warnings {
		src.warn(w.Error())
	}
	return c, nil
}

// normalize makes empty lists nil, so that a Config read back from YAML() equals the one written.
func normalize(c *Config) {
	cv := reflect.ValueOf(c).Elem()
	for _, key := range keys.order {
		f := cv.FieldByIndex(keys.settings[key].index)
		if f.Kind() == reflect.Slice && f.Len() == 0 && !f.IsNil() {
			f.Set(reflect.Zero(f.Type()))
		}
	}
}

// YAML writes the config with the same keys a config file uses, for --dry-run and the run directory.
func (c Config) YAML() ([]byte, error) {
	var doc yaml.Node
	if err := doc.Encode(c); err != nil {
		return nil, fmt.Errorf("config: encode YAML: %w", err)
	}
	flowLists(&doc)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("config: encode YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("config: encode YAML: %w", err)
	}
	return buf.Bytes(), nil
}

// flowLists writes lists on one line, "milestones: [81, 122]", as the presets do.
func flowLists(n *yaml.Node) {
	if n.Kind == yaml.SequenceNode {
		n.Style = yaml.FlowStyle
	}
	for _, child := range n.Content {
		flowLists(child)
	}
}

// Locate says where the config named by file comes from: its path, or "embedded configs/NAME.yaml" for a
// preset built into the binary ("" for no file).
func Locate(file string) (string, error) {
	_, label, _, err := resolveFile(file)
	return label, err
}

// resolveFile finds the YAML named by file: a regular file on disk first; for a bare name (resnet50 or
// resnet50.yaml) then the search paths; then an embedded preset. It returns the default run name, a label
// for error messages and the bytes (nil when file is empty).
func resolveFile(file string) (name, label string, data []byte, err error) {
	if file == "" {
		return "default", "", nil, nil
	}
	info, statErr := os.Stat(file)
	if statErr == nil && !info.IsDir() {
		return readConfigFile(file)
	}
	if statErr != nil && !errors.Is(statErr, fs.ErrNotExist) {
		return "", "", nil, fmt.Errorf("config: %w", statErr)
	}
	bare := filepath.Dir(filepath.Clean(file)) == "."
	if bare {
		path, err := searchConfig(strings.TrimSuffix(strings.TrimSuffix(file, ".yaml"), ".yml"))
		if err != nil {
			return "", "", nil, err
		}
		if path != "" {
			return readConfigFile(path)
		}
	}
	if preset, ok := presetName(file); ok {
		data, _ := configs.Read(preset)
		return preset, "embedded configs/" + preset + ".yaml", data, nil
	}
	presets := "presets: " + strings.Join(configs.Names(), ", ")
	if statErr == nil {
		return "", "", nil, fmt.Errorf("config: %s is a directory, not a YAML file or preset (%s)", file, presets)
	}
	if bare {
		presets = "searched " + strings.Join(SearchPaths(), ", ") + "; " + presets
	}
	return "", "", nil, fmt.Errorf("config: no such file or preset %q (%s)", file, presets)
}

func readConfigFile(path string) (name, label string, data []byte, err error) {
	data, err = os.ReadFile(path)
	if err != nil {
		return "", "", nil, fmt.Errorf("config: %w", err)
	}
	base := filepath.Base(path)
	return strings.TrimSuffix(base, filepath.Ext(base)), path, data, nil
}

// SearchPaths are the folders where a bare --config name (NAME or NAME.yaml) is looked for when the
// working directory has no such file, before the presets built into the binary: ./configs, then
// $XDG_CONFIG_HOME/resnet (~/.config/resnet).
func SearchPaths() []string {
	dirs := []string{"./configs"}
	if d, err := os.UserConfigDir(); err == nil {
		dirs = append(dirs, filepath.Join(d, "resnet"))
	}
	return dirs
}

// searchConfig looks for name.yaml in the search paths with viper's config search, and returns its path
// ("" when there is none). Only YAML is read: a name.json or name.toml found first is an error.
func searchConfig(name string) (string, error) {
	v := viper.New()
	v.SetConfigName(name)
	v.SetConfigType("yaml")
	for _, dir := range SearchPaths() {
		v.AddConfigPath(dir)
	}
	// Its parse errors are not used: readYAML reads the file again and reports them with their lines.
	err := v.ReadInConfig()
	var notFound viper.ConfigFileNotFoundError
	if errors.As(err, &notFound) {
		return "", nil
	}
	path := v.ConfigFileUsed()
	if path == "" {
		return "", fmt.Errorf("config: searching for %s: %w", name, err)
	}
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, path); err == nil && !strings.HasPrefix(rel, "..") {
			path = rel
		}
	}
	if ext := filepath.Ext(path); ext != ".yaml" && ext != ".yml" {
		return "", fmt.Errorf("config: %s: config files are YAML; rename it to %s.yaml", path, name)
	}
	return path, nil
}

// presetName reports the preset that file names: a bare name with or without .yaml, or a path inside a
// folder called configs (configs/resnet50.yaml run from elsewhere than the repository root). Other paths
// never fall back to a preset, so that a mistyped path is an error rather than a surprise.
func presetName(file string) (string, bool) {
	clean := filepath.Clean(file)
	dir, base := filepath.Dir(clean), filepath.Base(clean)
	if dir != "." && filepath.Base(dir) != "configs" {
		return "", false
	}
	name := strings.TrimSuffix(base, ".yaml")
	if _, ok := configs.Read(name); !ok {
		return "", false
	}
	return name, true
}

// readYAML checks a YAML document against the schema and returns its values as a nested map of the
// fields' types. Keys and values are checked here rather than by mapstructure so that every error can
// carry a line number. A null value (a key with nothing after it) leaves the lower layer's value.
func readYAML(data []byte, label string, origins map[string]origin) (map[string]any, []error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, []error{fmt.Errorf("config: cannot parse %s: %w", label, err)}
	}
	values := map[string]any{}
	if len(doc.Content) == 0 {
		return values, nil // empty file
	}
	root := resolveAlias(doc.Content[0])
	if isNull(root) {
		return values, nil
	}
	r := yamlReader{label: label, origins: origins}
	if root.Kind != yaml.MappingNode {
		r.errs = append(r.errs, fmt.Errorf("config: %s must be a mapping of keys to values (got %s) line %d",
			label, describeNode(root), root.Line))
		return nil, r.errs
	}
	r.mapping("", root, values)
	return values, r.errs
}

type yamlReader struct {
	label   string
	origins map[string]origin
	errs    []error
}

func (r *yamlReader) at(line int) string { return "in " + r.label + " line " + strconv.Itoa(line) }

func (r *yamlReader) mapping(section string, n *yaml.Node, out map[string]any) {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], resolveAlias(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			r.errs = append(r.errs, fmt.Errorf("config: key %s must be a plain name, not %s %s",
				r.at(k.Line), describeNode(k), keys.knownKeysHint(section)))
			continue
		}
		key := joinKey(section, k.Value)
		if first, dup := seen[k.Value]; dup {
			r.errs = append(r.errs, fmt.Errorf("config: key %q appears twice in %s (lines %d and %d)",
				key, r.label, first, k.Line))
			continue
		}
		seen[k.Value] = k.Line

		if s, ok := keys.settings[key]; ok {
			if isNull(val) {
				continue
			}
			if x, ok := r.value(s, val); ok {
				out[k.Value] = x
				r.origins[key] = origin{file: r.label, line: k.Line}
			}
			continue
		}
		if _, ok := keys.sections[key]; ok {
			if isNull(val) {
				continue
			}
			if val.Kind != yaml.MappingNode {
				r.errs = append(r.errs, &FieldError{Key: key,
					Reason: "must be a mapping with keys " + strings.Join(keys.sections[key], ", ") +
						" (got " + describeNode(val) + ")",
					Origin: r.at(val.Line)})
				continue
			}
			sub := map[string]any{}
			r.mapping(key, val, sub)
			out[k.Value] = sub
			continue
		}
		r.errs = append(r.errs, fmt.Errorf("config: unknown key %q %s %s", key, r.at(k.Line),
			keys.knownKeysHint(section)))
	}
}

// value converts the YAML value n of setting s to the field's type, recording an error when it has the
// wrong type.
func (r *yamlReader) value(s *setting, n *yaml.Node) (any, bool) {
	if s.typ.Kind() != reflect.Slice {
		x, ok := scalarValue(s.typ, n)
		if !ok {
			r.errs = append(r.errs, &FieldError{Key: s.key, Reason: typeReason(s.typ, n), Origin: r.at(n.Line)})
		}
		return x, ok
	}
	if n.Kind != yaml.SequenceNode {
		r.errs = append(r.errs, &FieldError{Key: s.key, Reason: typeReason(s.typ, n), Origin: r.at(n.Line)})
		return nil, false
	}
	out := reflect.MakeSlice(s.typ, 0, len(n.Content))
	ok := true
	for i, item := range n.Content {
		item = resolveAlias(item)
		x, itemOK := scalarValue(s.typ.Elem(), item)
		if !itemOK {
			r.errs = append(r.errs, &FieldError{Key: s.key + "[" + strconv.Itoa(i) + "]",
				Reason: typeReason(s.typ.Elem(), item), Origin: r.at(item.Line)})
			ok = false
			continue
		}
		out = reflect.Append(out, reflect.ValueOf(x))
	}
	return out.Interface(), ok
}

// scalarValue decodes a YAML scalar into type t. The YAML type must match: a quoted "0.1" is not a
// number and 1 is not text, so a value never silently changes meaning.
func scalarValue(t reflect.Type, n *yaml.Node) (any, bool) {
	if n.Kind != yaml.ScalarNode {
		return nil, false
	}
	tag := n.ShortTag()
	if t == lossScaleType { // a word or a number, kept as written
		if tag != "!!str" && tag != "!!int" && tag != "!!float" {
			return nil, false
		}
		return LossScale(n.Value), true
	}
	switch t.Kind() {
	case reflect.String:
		if tag != "!!str" {
			return nil, false
		}
	case reflect.Bool:
		if tag != "!!bool" {
			return nil, false
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if tag != "!!int" {
			return nil, false
		}
	case reflect.Float32, reflect.Float64:
		if tag != "!!int" && tag != "!!float" {
			return nil, false
		}
	default:
		return nil, false
	}
	p := reflect.New(t)
	if err := n.Decode(p.Interface()); err != nil {
		return nil, false // out of range for the field
	}
	return p.Elem().Interface(), true
}

func typeReason(t reflect.Type, n *yaml.Node) string {
	reason := "must be " + typeDescription(t) + " (got " + describeNode(n)
	if t.Kind() == reflect.String && t != lossScaleType && n.Kind == yaml.ScalarNode {
		reason += "; write " + strconv.Quote(n.Value) + " in quotes to use it as text"
	}
	return reason + ")"
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!str" {
			return strconv.Quote(n.Value)
		}
		return n.Value
	}
	return "an unsupported YAML node"
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// envPrefix is the prefix of the environment variables that set config keys: RESNET_TRAIN_LR is train.lr.
const envPrefix = "RESNET"

// readEnv takes the RESNET_* variables that name config keys, found by viper's environment binding, and
// converts their text to the fields' types. Other RESNET_* variables belong to other parts of the program
// and are ignored; an empty value counts as unset.
func readEnv(origins map[string]origin) (map[string]any, []error) {
	ev := viper.New()
	ev.SetEnvPrefix(envPrefix)
	ev.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	values := map[string]any{}
	var errs []error
	for _, key := range keys.order {
		if err := ev.BindEnv(key); err != nil {
			errs = append(errs, fmt.Errorf("config: environment: %w", err))
			continue
		}
		if !ev.IsSet(key) {
			continue
		}
		s := keys.settings[key]
		o := origin{env: s.envName()}
		x, err := s.fromText(ev.GetString(key), o)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		setNested(values, key, x)
		origins[key] = o
	}
	return values, errs
}

// fromText converts text given in the environment or with --set (o says which) to the setting's type.
func (s *setting) fromText(text string, o origin) (any, error) {
	x, ok := parseText(s.typ, text)
	if !ok {
		return nil, &FieldError{Key: s.key, Reason: "must be " + typeDescription(s.typ) + " (got " + strconv.Quote(text) + ")",
			Origin: o.String()}
	}
	return x, nil
}

// OtherVariables are the RESNET_* environment variables that are not config keys: they belong to the
// CUDA backend, data-parallel jobs, the build and the test scripts.
var OtherVariables = []string{
	"RESNET_AUGMENT_GOLDEN", "RESNET_BENCH_IMAGENET", "RESNET_CLI_CHILD", "RESNET_CUDA_CACHE", "RESNET_CUDA_DEVICE", "RESNET_CUDA_HOME",
	"RESNET_CUDA_TF32", "RESNET_CUDA_TOOLKIT", "RESNET_CUDA_WORKSPACE_MB", "RESNET_CUDNN_HOME",
	"RESNET_DDP_STEPS", "RESNET_DDP_TIMEOUT", "RESNET_DIST_TIMEOUT", "RESNET_GPU_ENV_DONE", "RESNET_GPU_LDCONFIG", "RESNET_GPU_LIB_DIRS", "RESNET_GPU_OPT_ROOTS",
	"RESNET_GPU_SYSTEM_DIRS", "RESNET_GPU_TEST_TIMEOUT", "RESNET_LAUNCHER", "RESNET_LOCK_TEST_CHILD", "RESNET_MASTER_PORT", "RESNET_NCCL_HOME",
	"RESNET_PYTHON", "RESNET_REQUIRE_CUDNN", "RESNET_REQUIRE_GPU", "RESNET_REQUIRE_NCCL", "RESNET_SCRIPTS", "RESNET_SYNTHETIC_GRID", "RESNET_TORCH_CACHE",
	"RESNET_TORCH_PYTHON",
}

// unknownEnv warns about the RESNET_* variables of environ that are neither a config key nor one of
// OtherVariables, with the closest key's variable when one is near (a typo reads as an ignored setting).
func unknownEnv(environ []string) []string {
	known := map[string]string{}
	var vars []string // the config variables, in key order
	for _, key := range keys.order {
		known[keys.settings[key].envName()] = key
		vars = append(vars, keys.settings[key].envName())
	}
	for _, v := range OtherVariables {
		known[v] = ""
	}
	var out []string
	for _, entry := range environ {
		name, _, _ := strings.Cut(entry, "=")
		if _, ok := known[name]; ok || !strings.HasPrefix(name, envPrefix+"_") {
			continue
		}
		msg := "config: " + name + " is not a config variable and is ignored"
		if near, d := suggest.Closest(name, vars); near != "" && d <= max(2, len(name)/5) {
			msg += "; did you mean " + near + " (" + known[near] + ")?"
		}
		out = append(out, msg)
	}
	sort.Strings(out)
	return out
}

type override struct {
	key   string
	value any
}

// readSets parses --set entries into typed overrides, in order.
func readSets(sets []string, origins map[string]origin) ([]override, []error) {
	var out []override
	var errs []error
	for _, entry := range sets {
		key, text, ok := strings.Cut(entry, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			errs = append(errs, fmt.Errorf("config: --set %q must be key=value, e.g. train.lr=0.05", entry))
			continue
		}
		o := origin{set: entry}
		s, known := keys.settings[key]
		if !known {
			if _, isSection := keys.sections[key]; isSection {
				errs = append(errs, fmt.Errorf("config: %q is a section, not a value; set one of its keys %s %s",
					key, o, keys.knownKeysHint(key)))
				continue
			}
			errs = append(errs, fmt.Errorf("config: unknown key %q %s %s", key, o,
				keys.knownKeysHint(keys.deepestSection(key))))
			continue
		}
		x, err := s.fromText(text, o)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, override{key: key, value: x})
		origins[key] = o
	}
	return out, errs
}

func setNested(m map[string]any, key string, value any) {
	parts := strings.Split(key, ".")
	for _, p := range parts[:len(parts)-1] {
		sub, ok := m[p].(map[string]any)
		if !ok {
			sub = map[string]any{}
			m[p] = sub
		}
		m = sub
	}
	m[parts[len(parts)-1]] = value
}
