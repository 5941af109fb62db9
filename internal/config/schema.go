package config

import (
	"encoding"
	"reflect"
	"strings"
	"time"
)

// leaf is one key of Config that holds a value rather than a section.
type leaf struct {
	path string       // koanf path, e.g. "redis.dial_timeout"
	typ  reflect.Type // the field's type
	env  string       // environment name; empty for plugins
}

// schema is the set of keys of Config, derived from its koanf tags.
type schema struct {
	leaves []leaf
	byPath map[string]int    // leaf path -> index in leaves
	byEnv  map[string]string // environment name -> leaf path
}

// pluginsKey is the section that holds one map per plugin ID.
const pluginsKey = "plugins"

var (
	durationType        = reflect.TypeFor[time.Duration]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	configSchema        = buildSchema(reflect.TypeFor[Config]())
)

func buildSchema(t reflect.Type) *schema {
	s := &schema{byPath: map[string]int{}, byEnv: map[string]string{}}
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, ok := fieldKey(f)
			if !ok {
				continue
			}
			path := joinKey(prefix, name)
			if isSection(f.Type) {
				walk(path, f.Type)
				continue
			}
			l := leaf{path: path, typ: f.Type}
			if path != pluginsKey {
				l.env = envName(path)
				if other, dup := s.byEnv[l.env]; dup {
					panic("config: keys " + other + " and " + path + " share the environment name " + l.env)
				}
				s.byEnv[l.env] = path
			}
			s.byPath[path] = len(s.leaves)
			s.leaves = append(s.leaves, l)
		}
	}
	walk("", t)
	return s
}

// leaf returns the leaf at path.
func (s *schema) leaf(path string) (leaf, bool) {
	i, ok := s.byPath[path]
	if !ok {
		return leaf{}, false
	}
	return s.leaves[i], true
}

// replacedWhole reports whether a later layer replaces the value at path
// whole instead of merging into it: true for the map-typed keys such as
// worker.queues, so that a file listing two queues does not inherit the
// default queue. Plugin sections merge, so a file can add to -dev's.
func (s *schema) replacedWhole(path string) bool {
	l, ok := s.leaf(path)
	return ok && l.typ.Kind() == reflect.Map && path != pluginsKey
}

// envName is the environment name of a key: upper case, "_" for ".".
func envName(path string) string {
	return strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

// fieldKey returns the config key of a struct field: its koanf tag, or its
// lower-cased name when untagged. Unexported fields and "-" have none.
func fieldKey(f reflect.StructField) (string, bool) {
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

// isSection reports whether values of t are sections of keys (structs)
// rather than single values.
func isSection(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && !reflect.PointerTo(t).Implements(textUnmarshalerType)
}

func joinKey(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// toMap renders a struct as the nested map koanf holds, keyed by koanf tags.
func toMap(v reflect.Value) map[string]any {
	out := map[string]any{}
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, ok := fieldKey(f)
		if !ok {
			continue
		}
		fv := v.Field(i)
		switch {
		case isSection(f.Type):
			out[name] = toMap(fv)
		case f.Type == reflect.TypeFor[map[string]map[string]any]():
			m := map[string]any{}
			for id, sec := range fv.Interface().(map[string]map[string]any) {
				m[id] = copyAny(map[string]any(sec))
			}
			out[name] = m
		default:
			out[name] = fv.Interface()
		}
	}
	return out
}

// copyAny deep-copies the maps and slices of a decoded YAML value.
func copyAny(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if x == nil {
			return x
		}
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = copyAny(e)
		}
		return m
	case []any:
		if x == nil {
			return x
		}
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = copyAny(e)
		}
		return s
	case []string:
		return append([]string(nil), x...)
	}
	return v
}
