package config

import (
	"reflect"
	"testing"
)

// Guards for fields added to Config later: YAML() must write the keys Load reads, and every setting must
// be settable from RESNET_* and --set text.
func TestSchemaCoversConfig(t *testing.T) {
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			if ms, y := f.Tag.Get("mapstructure"), f.Tag.Get("yaml"); ms != y {
				t.Errorf("%s%s: mapstructure tag %q differs from yaml tag %q", prefix, f.Name, ms, y)
			}
			if f.Type.Kind() == reflect.Struct {
				walk(prefix+f.Name+".", f.Type)
			}
		}
	}
	walk("", reflect.TypeOf(Config{}))

	zero := reflect.ValueOf(Config{})
	for _, key := range keys.order {
		s := keys.settings[key]
		text := formatValue(zero.FieldByIndex(s.index).Interface())
		if s.typ.Kind() == reflect.String {
			text = ""
		}
		if _, ok := parseText(s.typ, text); !ok {
			t.Errorf("%s (%s) cannot be set from text %q", key, s.typ, text)
		}
	}
	if got := keys.settings["train.lr"].envName(); got != "RESNET_TRAIN_LR" {
		t.Errorf("env name of train.lr = %s", got)
	}
}
