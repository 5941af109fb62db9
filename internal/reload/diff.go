package reload

import (
	"reflect"
	"slices"
	"strings"
)

// Change kinds.
const (
	Changed = "changed"
	Added   = "added"
	Removed = "removed"
)

// Change is one key whose value differs between two configs.
type Change struct {
	// Key is the full koanf path: "log.level", "ratelimit.tasks.email:send",
	// "plugins.webhook.rate".
	Key string
	// Kind is Changed, Added (the key is new) or Removed (it is gone).
	Kind string
}

// Diff returns the keys whose values differ between old and new, two values
// of the same struct type whose fields carry koanf tags, in key order.
// Sections (structs) are walked; a map is compared entry by entry, each
// entry a key of its own (maps nested in maps, as plugin sections are, are
// walked too); any other value, lists included, is compared whole.
func Diff(old, new any) []Change {
	var out []Change
	diffValue("", reflect.ValueOf(old), reflect.ValueOf(new), &out)
	slices.SortFunc(out, func(a, b Change) int { return strings.Compare(a.Key, b.Key) })
	return out
}

func diffValue(path string, a, b reflect.Value, out *[]Change) {
	a, b = deref(a), deref(b)
	switch {
	case !a.IsValid() && !b.IsValid():
		return
	case !a.IsValid():
		*out = append(*out, Change{Key: path, Kind: Added})
		return
	case !b.IsValid():
		*out = append(*out, Change{Key: path, Kind: Removed})
		return
	case a.Type() != b.Type():
		*out = append(*out, Change{Key: path, Kind: Changed})
		return
	}
	switch a.Kind() {
	case reflect.Struct:
		if !hasKoanfFields(a.Type()) { // time.Time and the like are values
			break
		}
		for i := range a.NumField() {
			f := a.Type().Field(i)
			name, ok := fieldKey(f)
			if !ok {
				continue
			}
			diffValue(join(path, name), a.Field(i), b.Field(i), out)
		}
		return
	case reflect.Map:
		if a.Type().Key().Kind() != reflect.String {
			break
		}
		keys := map[string]bool{}
		for _, k := range a.MapKeys() {
			keys[k.String()] = true
		}
		for _, k := range b.MapKeys() {
			keys[k.String()] = true
		}
		for k := range keys {
			kv := reflect.ValueOf(k).Convert(a.Type().Key())
			diffValue(join(path, k), a.MapIndex(kv), b.MapIndex(kv), out)
		}
		return
	}
	if !reflect.DeepEqual(a.Interface(), b.Interface()) {
		*out = append(*out, Change{Key: path, Kind: Changed})
	}
}

// deref follows pointers and interfaces to the value they hold; a nil one
// becomes the invalid Value.
func deref(v reflect.Value) reflect.Value {
	for v.IsValid() && (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) {
		if v.IsNil() {
			return reflect.Value{}
		}
		v = v.Elem()
	}
	return v
}

func hasKoanfFields(t reflect.Type) bool {
	for i := range t.NumField() {
		if _, ok := t.Field(i).Tag.Lookup("koanf"); ok {
			return true
		}
	}
	return false
}

// fieldKey is a field's config key: its koanf tag, or its lower-cased name.
func fieldKey(f reflect.StructField) (string, bool) {
	if !f.IsExported() {
		return "", false
	}
	name, _, _ := strings.Cut(f.Tag.Get("koanf"), ",")
	switch name {
	case "-":
		return "", false
	case "":
		return strings.ToLower(f.Name), true
	}
	return name, true
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// Under reports whether key is prefix or lies under it ("a.b" is under "a").
func Under(key, prefix string) bool {
	return key == prefix || strings.HasPrefix(key, prefix+".")
}
