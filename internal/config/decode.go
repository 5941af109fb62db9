package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
)

// Decoder decodes raw koanf maps into structs, key by key, so that every bad
// key is reported at once with its full path and the form it expects.
type Decoder struct {
	// Problems collects what is wrong; required.
	Problems *Problems
	// Origin names where a key's value came from ("REDIS_PORT"), or "".
	Origin func(key string) string
	// Form names the form expected at a key; nil means TypeForm.
	Form func(key string, t reflect.Type) string
}

// DecodeSection decodes section, the value found at key (for example
// "plugins.webhook"), into v, a pointer to a struct, with the rules that Load
// uses: keys are the fields' koanf tags, an unknown key is an error that names
// it, strings from the environment become durations, numbers, booleans, lists
// ("a,b") and maps ("a=1,b=2"). Fields absent from section keep the values
// they had, so set defaults in v first. The error matches ErrInvalid.
func DecodeSection(key string, section map[string]any, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("config: DecodeSection needs a non-nil pointer to a struct, got %T", v)
	}
	var ps Problems
	d := Decoder{Problems: &ps}
	d.DecodeStruct(key, section, rv.Elem())
	return ps.Err(nil)
}

// DecodeStruct decodes raw into the struct v, one key at a time.
func (d Decoder) DecodeStruct(prefix string, raw map[string]any, v reflect.Value) {
	t := v.Type()
	fields := map[string]int{}
	for i := range t.NumField() {
		if name, ok := FieldKey(t.Field(i)); ok {
			fields[name] = i
		}
	}
	for _, k := range sortedKeys(raw) {
		key := JoinKey(prefix, k)
		i, ok := fields[k]
		if !ok {
			d.add(key, "unknown key"+suggest(k, fields, prefix))
			continue
		}
		val := raw[k]
		fv := v.Field(i)
		if val == nil {
			continue // "key:" with no value keeps the value below it
		}
		if IsSection(fv.Type()) {
			m, ok := val.(map[string]any)
			if !ok {
				d.bad(key, val, "a section of keys")
				continue
			}
			d.DecodeStruct(key, m, fv)
			continue
		}
		d.decodeValue(key, val, fv)
	}
}

// decodeValue decodes one value into fv, replacing what fv held.
func (d Decoder) decodeValue(key string, val any, fv reflect.Value) {
	t := fv.Type()
	if t.Kind() == reflect.Map && t.Key().Kind() == reflect.String {
		d.decodeMap(key, val, fv)
		return
	}
	tmp := reflect.New(t)
	if err := decodeWith(val, tmp.Interface()); err != nil {
		if items, ok := val.([]any); ok && t.Kind() == reflect.Slice {
			for i, item := range items {
				if decodeWith(item, reflect.New(t.Elem()).Interface()) != nil {
					d.add(key, fmt.Sprintf("item %d, %s, is not %s", i+1, Show(key, item), d.form("", t.Elem())))
					return
				}
			}
		}
		d.bad(key, val, d.form(key, t))
		return
	}
	if t.Kind() == reflect.Slice && tmp.Elem().Len() == 0 {
		fv.SetZero() // an empty list is nil, as in Default()
		return
	}
	fv.Set(tmp.Elem())
}

// decodeMap decodes a map from a YAML map or from "name=value,name=value",
// reporting each bad entry under its own key (worker.queues.low).
func (d Decoder) decodeMap(key string, val any, fv reflect.Value) {
	t := fv.Type()
	elem := t.Elem()
	var entries map[string]any
	switch x := val.(type) {
	case string:
		m, ok := parsePairs(x)
		if !ok {
			d.bad(key, val, d.form(key, t))
			return
		}
		entries = m
	default:
		rv := reflect.ValueOf(val)
		if rv.Kind() != reflect.Map || rv.Type().Key().Kind() != reflect.String {
			d.bad(key, val, d.form(key, t))
			return
		}
		entries = make(map[string]any, rv.Len())
		for it := rv.MapRange(); it.Next(); {
			entries[it.Key().String()] = it.Value().Interface()
		}
		if elem.Kind() != reflect.Map && elem.Kind() != reflect.Struct && elem.Kind() != reflect.Interface {
			// A task type "a.b" may have been split on the dot by a layer.
			entries = flattenDots(entries)
		}
	}
	if len(entries) > MaxKeys {
		d.add(key, fmt.Sprintf("has more than %d entries; expected at most %d", MaxKeys, MaxKeys))
		return
	}
	out := reflect.MakeMapWithSize(t, len(entries))
	for _, name := range sortedKeys(entries) {
		ekey := key + "." + name
		ev := reflect.New(elem).Elem()
		if raw := entries[name]; raw != nil {
			if m, ok := raw.(map[string]any); ok && IsSection(elem) {
				// A section per name (schedules.<name>): each key is
				// checked and named on its own.
				d.DecodeStruct(ekey, m, ev)
				out.SetMapIndex(reflect.ValueOf(name).Convert(t.Key()), ev)
				continue
			}
			if elem.Kind() == reflect.Map && elem.Key().Kind() == reflect.String {
				if _, ok := raw.(map[string]any); !ok {
					d.bad(ekey, raw, d.form(ekey, elem))
					continue
				}
			}
			tmp := reflect.New(elem)
			if err := decodeWith(CopyAny(raw), tmp.Interface()); err != nil {
				d.bad(ekey, raw, d.form(ekey, elem))
				continue
			}
			ev = tmp.Elem()
		} else if elem.Kind() == reflect.Map {
			ev = reflect.MakeMap(elem) // "plugins: {canary: }" enables canary
		}
		out.SetMapIndex(reflect.ValueOf(name).Convert(t.Key()), ev)
	}
	fv.Set(out)
}

func (d Decoder) add(key, msg string) {
	if d.Origin != nil {
		if o := d.Origin(key); o != "" {
			msg += " (from " + o + ")"
		}
	}
	d.Problems.Add(key, msg)
}

// bad records that val, found at key, is not of the expected form.
func (d Decoder) bad(key string, val any, form string) {
	d.add(key, Show(key, val)+" is not "+form)
}

// decodeWith decodes in into out (a pointer) strictly, with the hooks that
// turn environment strings into typed values.
func decodeWith(in, out any) error {
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		// Passing a DecoderConfig drops koanf's own hooks, durations
		// included; these put them back, stricter.
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			strictHook,
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.TextUnmarshallerHookFunc(),
		),
		ErrorUnused: true,
		ZeroFields:  true,
		TagName:     "koanf",
		Result:      out,
	})
	if err != nil {
		return err
	}
	return dec.Decode(in)
}

var errForm = errors.New("value of the wrong form")

// strictHook converts strings (from the environment, flags or quoted YAML)
// to the target's type, and refuses what mapstructure would let through
// silently: "" or 6379.5 as an int, a bare 5 as a duration of 5ns.
func strictHook(from, to reflect.Type, data any) (any, error) {
	if data == nil || reflect.PointerTo(to).Implements(textUnmarshalerType) {
		return data, nil
	}
	s, isString := data.(string)
	s = strings.TrimSpace(s)
	if to == durationType {
		if d, ok := data.(time.Duration); ok {
			return d, nil
		}
		switch {
		case isString:
			return time.ParseDuration(s)
		case isNumber(from):
			if f, _ := toFloat(data); f == 0 {
				return time.Duration(0), nil
			}
			return nil, errForm // a duration needs a unit
		}
		return data, nil
	}
	switch to.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if isString {
			return strconv.ParseInt(s, 10, to.Bits())
		}
		if f, ok := toFloat(data); ok && (from.Kind() == reflect.Float32 || from.Kind() == reflect.Float64) {
			if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
				return nil, errForm
			}
			return int64(f), nil
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if isString {
			return strconv.ParseUint(s, 10, to.Bits())
		}
	case reflect.Float32, reflect.Float64:
		if isString {
			f, err := strconv.ParseFloat(s, to.Bits())
			if err == nil && (math.IsNaN(f) || math.IsInf(f, 0)) {
				return nil, errForm
			}
			return f, err
		}
	case reflect.Bool:
		if isString {
			return strconv.ParseBool(s)
		}
	case reflect.String:
		if isNumber(from) || from.Kind() == reflect.Bool {
			return fmt.Sprint(data), nil // password: 12345 in YAML
		}
	case reflect.Slice:
		if isString && to.Elem().Kind() != reflect.Uint8 {
			return splitList(s), nil
		}
	case reflect.Map:
		if isString {
			m, ok := parsePairs(s)
			if !ok {
				return nil, errForm
			}
			return m, nil
		}
	}
	if from.Kind() == reflect.Bool && to.Kind() != reflect.Bool && to.Kind() != reflect.Interface {
		return nil, errForm
	}
	return data, nil
}

func isNumber(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

func toFloat(v any) (float64, bool) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(rv.Int()), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return float64(rv.Uint()), true
	case reflect.Float32, reflect.Float64:
		return rv.Float(), true
	}
	return 0, false
}

// splitList splits "a, b,c" into its non-empty, trimmed items.
func splitList(s string) []string {
	out := []string{}
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// parsePairs parses "name=value,name=value"; an empty string is an empty map.
func parsePairs(s string) (map[string]any, bool) {
	out := map[string]any{}
	for _, item := range splitList(s) {
		name, value, ok := strings.Cut(item, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, false
		}
		out[name] = strings.TrimSpace(value)
	}
	return out, true
}

// flattenDots joins nested maps back into dotted names: {a: {b: 1}} is a.b.
func flattenDots(m map[string]any) map[string]any {
	out := map[string]any{}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
				walk(JoinKey(prefix, k), sub)
				continue
			}
			out[JoinKey(prefix, k)] = v
		}
	}
	walk("", m)
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Show renders a bad value for a message: quoted when a string, never when
// the key holds a secret.
func Show(key string, v any) string {
	if IsSecretKey(key) {
		return "the value"
	}
	switch x := v.(type) {
	case string:
		if len(x) > 80 {
			x = x[:77] + "..."
		}
		return strconv.Quote(x)
	case time.Duration:
		return x.String()
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.Map:
		return "a map"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return fmt.Sprint(v)
	}
	return fmt.Sprintf("a %T", v)
}

// suggest returns " (did you mean x?)" for a near miss among the known keys.
func suggest(name string, fields map[string]int, prefix string) string {
	names := make([]string, 0, len(fields))
	for f := range fields {
		names = append(names, f)
	}
	best, ok := Nearest(name, names)
	if !ok {
		return ""
	}
	return " (did you mean " + JoinKey(prefix, best) + "?)"
}

// Nearest returns the candidate nearest to name when it is a near miss: at
// most two edits away, and fewer than half of name's length.
func Nearest(name string, candidates []string) (string, bool) {
	best, bestDist := "", 3
	for _, f := range candidates {
		if d := editDistance(name, f); d < bestDist || (d == bestDist && f < best) {
			best, bestDist = f, d
		}
	}
	if best == "" || bestDist > len(name)/2 {
		return "", false
	}
	return best, true
}

// editDistance is the Damerau-Levenshtein (optimal string alignment)
// distance, so that "hots" is one step from "host".
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// form names the form expected at key.
func (d Decoder) form(key string, t reflect.Type) string {
	if d.Form != nil {
		return d.Form(key, t)
	}
	return TypeForm(t)
}
