package config

import (
	"encoding"
	"reflect"
	"strings"
	"time"
)

// PluginsKey is the section that holds one map per plugin ID.
const PluginsKey = "plugins"

var (
	durationType        = reflect.TypeFor[time.Duration]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// FieldKey returns the config key of a struct field: its koanf tag, or its
// lower-cased name when untagged. Unexported fields and "-" have none.
func FieldKey(f reflect.StructField) (string, bool) {
	if !f.IsExported() {
		return "", false
	}
	tag := f.Tag.Get("koanf")
	name, _, _ := strings.Cut(tag, ",")
	switch name {
	case "-":
		return "", false
	case "":
		return strings.ToLower(f.Name), true
	}
	return name, true
}

// IsSection reports whether values of t are sections of keys (structs)
// rather than single values.
func IsSection(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && !reflect.PointerTo(t).Implements(textUnmarshalerType)
}

func JoinKey(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// CopyAny deep-copies the maps and slices of a decoded YAML value.
func CopyAny(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if x == nil {
			return x
		}
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = CopyAny(e)
		}
		return m
	case []any:
		if x == nil {
			return x
		}
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = CopyAny(e)
		}
		return s
	case []string:
		return append([]string(nil), x...)
	}
	return v
}

// TypeForm names the form of a value of type t, for error messages.
func TypeForm(t reflect.Type) string {
	if t == durationType {
		return "a duration with a unit, such as 500ms, 2s or 1m"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "a boolean (true or false)"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer >= 0"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list (a YAML list, or comma-separated in the environment)"
	case reflect.Map:
		return "a map (name=value,name=value in the environment)"
	case reflect.Struct:
		return "a section of keys"
	}
	return "a " + t.String()
}
