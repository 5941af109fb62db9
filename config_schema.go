package taskhost

import (
	"reflect"
	"strings"

	"github.com/taskhost/taskhost/internal/config"
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

var (
	configSchema = buildSchema(reflect.TypeFor[Config]())
)

func buildSchema(t reflect.Type) *schema {
	s := &schema{byPath: map[string]int{}, byEnv: map[string]string{}}
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, ok := config.FieldKey(f)
			if !ok {
				continue
			}
			path := config.JoinKey(prefix, name)
			if config.IsSection(f.Type) {
				walk(path, f.Type)
				continue
			}
			l := leaf{path: path, typ: f.Type}
			if path != config.PluginsKey {
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
	return ok && l.typ.Kind() == reflect.Map && path != config.PluginsKey
}

// envName is the environment name of a key: upper case, "_" for ".".
func envName(path string) string {
	return strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

// toMap renders a struct as the nested map koanf holds, keyed by koanf tags.
func toMap(v reflect.Value) map[string]any {
	out := map[string]any{}
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, ok := config.FieldKey(f)
		if !ok {
			continue
		}
		fv := v.Field(i)
		switch {
		case config.IsSection(f.Type):
			out[name] = toMap(fv)
		case f.Type == reflect.TypeFor[map[string]map[string]any]():
			m := map[string]any{}
			for id, sec := range fv.Interface().(map[string]map[string]any) {
				m[id] = config.CopyAny(map[string]any(sec))
			}
			out[name] = m
		default:
			out[name] = fv.Interface()
		}
	}
	return out
}

// keyRank orders keys as the fields of Config are ordered. A key below a
// map-typed leaf (worker.queues.low) ranks with that leaf; a section or an
// unknown key ranks with the first leaf of its nearest known section.
func keyRank(key string) int {
	if key == "" {
		return -1
	}
	leaves := configSchema.leaves
	best, bestLen := 0, -1
	for i, l := range leaves {
		if (key == l.path || strings.HasPrefix(key, l.path+".")) && len(l.path) > bestLen {
			best, bestLen = i, len(l.path)
		}
	}
	if bestLen >= 0 {
		return best
	}
	for k := key; ; {
		for i, l := range leaves {
			if strings.HasPrefix(l.path, k+".") {
				return i
			}
		}
		j := strings.LastIndex(k, ".")
		if j < 0 {
			return len(leaves)
		}
		k = k[:j]
	}
}
