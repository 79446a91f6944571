package config

// The key schema is derived once from Config's mapstructure tags, so adding a field to Config makes it a
// known key for YAML, RESNET_* and --set without touching the loader.

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
)

// setting is one leaf key of the schema: a field holding a value rather than a section.
type setting struct {
	key   string       // dotted key, e.g. "train.schedule.milestones"
	index []int        // field path in Config, for reflect.Value.FieldByIndex
	typ   reflect.Type // the field's Go type
}

// envName is the environment variable that sets s, as viper's binding in readEnv names it: RESNET_ plus
// the key upper-cased, dots as underscores.
func (s *setting) envName() string {
	return envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(s.key, ".", "_"))
}

// schema lists the keys of Config.
type schema struct {
	settings map[string]*setting // leaf key -> setting
	order    []string            // leaf keys in struct order
	sections map[string][]string // section key ("" for the top level) -> child names in struct order
}

var keys = buildSchema(reflect.TypeOf(Config{}))

func buildSchema(t reflect.Type) *schema {
	s := &schema{settings: map[string]*setting{}, sections: map[string][]string{}}
	s.add("", nil, t)
	return s
}

func (s *schema) add(prefix string, index []int, t reflect.Type) {
	s.sections[prefix] = []string{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := joinKey(prefix, name)
		idx := append(append([]int(nil), index...), i)
		s.sections[prefix] = append(s.sections[prefix], name)
		if f.Type.Kind() == reflect.Struct {
			s.add(key, idx, f.Type)
			continue
		}
		s.settings[key] = &setting{key: key, index: idx, typ: f.Type}
		s.order = append(s.order, key)
	}
}

// knownKeysHint is the parenthesised list of keys allowed under section, for unknown-key errors.
func (s *schema) knownKeysHint(section string) string {
	if section == "" {
		return "(known top-level keys: " + strings.Join(s.sections[""], ", ") + ")"
	}
	return "(known keys under " + section + ": " + strings.Join(s.sections[section], ", ") + ")"
}

// deepestSection is the longest known section that key lies under ("" at worst).
func (s *schema) deepestSection(key string) string {
	section := parentKey(key)
	for section != "" {
		if _, ok := s.sections[section]; ok {
			break
		}
		section = parentKey(section)
	}
	return section
}

func joinKey(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// parentKey is the section holding key ("" for a top-level key).
func parentKey(key string) string {
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		return key[:i]
	}
	return ""
}

// typeDescription says what a value of type t must look like, for "must be ..." messages.
func typeDescription(t reflect.Type) string {
	if t == lossScaleType {
		return "auto, dynamic, none or a positive number"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice:
		switch d := typeDescription(t.Elem()); d {
		case "an integer":
			return "a list of integers"
		case "a number":
			return "a list of numbers"
		case "a string":
			return "a list of strings"
		default:
			return "a list of values that are each " + d
		}
	}
	return "a " + t.String()
}

// parseText converts text from the environment or --set to a value of type t. A list is written
// "[81,122]" or "81,122"; "[]" or nothing is the empty list.
func parseText(t reflect.Type, text string) (any, bool) {
	if t.Kind() == reflect.Slice {
		inner := strings.TrimSpace(text)
		if strings.HasPrefix(inner, "[") && strings.HasSuffix(inner, "]") {
			inner = strings.TrimSpace(inner[1 : len(inner)-1])
		}
		out := reflect.MakeSlice(t, 0, 0)
		if inner == "" {
			return out.Interface(), true
		}
		for _, item := range strings.Split(inner, ",") {
			v, ok := parseScalar(t.Elem(), strings.TrimSpace(item))
			if !ok {
				return nil, false
			}
			out = reflect.Append(out, reflect.ValueOf(v))
		}
		return out.Interface(), true
	}
	if t.Kind() == reflect.String {
		return reflect.ValueOf(text).Convert(t).Interface(), true
	}
	return parseScalar(t, strings.TrimSpace(text))
}

func parseScalar(t reflect.Type, text string) (any, bool) {
	var v reflect.Value
	switch t.Kind() {
	case reflect.String:
		v = reflect.ValueOf(text)
	case reflect.Bool:
		b, err := strconv.ParseBool(text)
		if err != nil {
			return nil, false
		}
		v = reflect.ValueOf(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, err := strconv.ParseInt(text, 10, t.Bits())
		if err != nil {
			return nil, false
		}
		v = reflect.ValueOf(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		u, err := strconv.ParseUint(text, 10, t.Bits())
		if err != nil {
			return nil, false
		}
		v = reflect.ValueOf(u)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(text, t.Bits())
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, false
		}
		v = reflect.ValueOf(f)
	default:
		return nil, false
	}
	return v.Convert(t).Interface(), true
}

// formatValue writes a value the way error messages quote it: strings quoted, lists in brackets.
func formatValue(v any) string {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String:
		return strconv.Quote(rv.String())
	case reflect.Float32, reflect.Float64:
		return strconv.FormatFloat(rv.Float(), 'g', -1, 64)
	case reflect.Slice:
		parts := make([]string, rv.Len())
		for i := range parts {
			parts[i] = formatValue(rv.Index(i).Interface())
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return fmt.Sprint(v)
}

// Keys lists every leaf key of the config in struct order ("seed", "model.arch", "train.lr", ...), for
// shell completion of --set.
func Keys() []string { return append([]string(nil), keys.order...) }
