package taskhost

import (
	"reflect"

	"github.com/taskhost/taskhost/internal/config"
)

// WithDefaults returns c with every zero field set to its default from
// DefaultConfig, in the style of River's Config.WithDefaults, so that a
// program can name only what it needs:
//
//	taskhost.New(taskhost.Config{Redis: taskhost.RedisConfig{URL: os.Getenv("REDIS_URL")}}, taskhost.Options{})
//
// New and Validate call it; call it yourself to see or adjust what they
// will use.
//
// Which zero values mean "default": in a Config built in Go (a literal, or
// the zero Config), every zero field does: "", 0, a zero duration, false,
// and a nil or empty list or map. That includes the five settings whose
// zero value is also a valid setting, which a literal cannot tell apart
// from "not set": redis.max_retries (default -1, no retries; 0 would be
// go-redis' 3), redis.dialer_retries (default 1; 0 would be go-redis' 5),
// worker.max_retry (default 25), worker.autopipeline (default true) and
// ui.read_only (default true, so an enabled dashboard is read-only unless
// asked otherwise). To set one of those to its zero value, set it on the
// result of WithDefaults (or of DefaultConfig) instead:
//
//	cfg := taskhost.Config{Redis: taskhost.RedisConfig{URL: url}}.WithDefaults()
//	cfg.Worker.MaxRetry = 0 // taken as it is: New does not fill it again
//
// A Config returned by DefaultConfig, LoadConfig or WithDefaults is
// complete: WithDefaults returns it unchanged, so every value in it, zeros
// included, is taken as it is, and Validate reports a zero that is not
// valid (worker.concurrency: 0) rather than replace it. Copies of a complete
// Config are complete.
//
// redis.url wins over redis.host, port, username, password and db when set,
// so the host and port defaults do not matter then.
func (c Config) WithDefaults() Config {
	if c.complete {
		return c
	}
	fillZeros(reflect.ValueOf(&c).Elem(), reflect.ValueOf(DefaultConfig()))
	c.complete = true
	return c
}

// fillZeros sets each zero leaf of the section dst to a copy of the same
// leaf of def.
func fillZeros(dst, def reflect.Value) {
	t := dst.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if _, ok := config.FieldKey(f); !ok {
			continue
		}
		dv, fv := def.Field(i), dst.Field(i)
		switch {
		case config.IsSection(f.Type):
			fillZeros(fv, dv)
		case isUnset(fv):
			fv.Set(cloneValue(dv))
		}
	}
}

// isUnset reports whether v is its type's zero value, or an empty list or map.
func isUnset(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Map, reflect.Slice:
		return v.Len() == 0
	}
	return v.IsZero()
}

// cloneValue copies a map or a slice one level deep, so that configs do not
// share the defaults' maps; other values are copied by assignment.
func cloneValue(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		m := reflect.MakeMapWithSize(v.Type(), v.Len())
		for it := v.MapRange(); it.Next(); {
			m.SetMapIndex(it.Key(), it.Value())
		}
		return m
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		return reflect.AppendSlice(reflect.MakeSlice(v.Type(), 0, v.Len()), v)
	}
	return v
}
