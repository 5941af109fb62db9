package taskhost

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"strings"

	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/v2"
	"github.com/taskhost/taskhost/internal/config"
)

// DefaultPath is the config file read when none is named.
const DefaultPath = "config.yaml"

// LoadOptions says where Load finds each layer.
type LoadOptions struct {
	// Path is the YAML file; empty means no file.
	Path string
	// PathExplicit says the user named Path: then a missing file is an
	// error. A missing default file is not.
	PathExplicit bool
	// Dev lays the development overlay over the defaults: embedded Redis,
	// the UI on, and those of the built-in plugins webhook (loopback
	// allowed) and canary that the binary compiles in, enabled. The file,
	// environment and flags still override it.
	Dev bool
	// CheckPlugins also checks the plugins, in the same error as the rest:
	// IDs that are not compiled in, and each plugin's own section (see
	// CheckConfig). The worker sets it; a command that only enqueues does
	// not, so that it can load a worker's config without its plugins.
	CheckPlugins bool
	// Environ is the environment as "NAME=value"; nil means os.Environ().
	// Pass an empty, non-nil slice to ignore the environment.
	Environ []string
	// Flags holds the flags the user set, keyed by koanf path
	// ("redis.url"); values are strings or typed values.
	Flags map[string]any
}

// Load builds the configuration from its layers, each overriding the one
// before: DefaultConfig(), the Dev overlay, the file, the environment, the flags.
// A map-typed key (worker.queues, ratelimit.limits, ratelimit.tasks) is
// replaced whole by a later layer; other sections merge key by key. Load
// then validates. Every error matches ErrInvalidConfig; an *Error lists all
// problems of keys and values at once.
func LoadConfig(opts LoadOptions) (Config, error) {
	ko := koanf.New(".")
	merge := koanf.WithMergeFunc(mergeLayer)
	var ps config.Problems
	origins := map[string]string{}

	if err := ko.Load(confmap.Provider(toMap(reflect.ValueOf(DefaultConfig())), ""), nil, merge); err != nil {
		return Config{}, fmt.Errorf("%w: defaults: %w", ErrInvalidConfig, err)
	}
	if opts.Dev {
		if err := ko.Load(confmap.Provider(devOverlay(), ""), nil, merge); err != nil {
			return Config{}, fmt.Errorf("%w: dev overlay: %w", ErrInvalidConfig, err)
		}
	}
	if opts.Path == "" && opts.PathExplicit {
		return Config{}, fmt.Errorf("%w: config file path is empty", ErrInvalidConfig)
	}
	if opts.Path != "" {
		if err := ko.Load(config.BoundedFile(opts.Path), config.BoundedYAML{}, merge); err != nil {
			if !errors.Is(err, fs.ErrNotExist) || opts.PathExplicit {
				return Config{}, fmt.Errorf("%w: config file %q: %w", ErrInvalidConfig, opts.Path, fileError(err))
			}
		}
	}
	environ := opts.Environ
	if environ == nil {
		environ = os.Environ()
	}
	if err := ko.Load(envProvider(environ, &ps, origins), nil, merge); err != nil {
		return Config{}, fmt.Errorf("%w: environment: %w", ErrInvalidConfig, err)
	}
	if len(opts.Flags) > 0 {
		for path := range opts.Flags {
			origins[path] = "the command line"
		}
		if err := ko.Load(confmap.Provider(opts.Flags, "."), nil, merge); err != nil {
			return Config{}, fmt.Errorf("%w: flags: %w", ErrInvalidConfig, err)
		}
	}

	raw := ko.Raw()
	if n := config.CountKeys(raw, config.MaxKeys+1); n > config.MaxKeys {
		return Config{}, fmt.Errorf("%w: more than %d keys in the file, environment and flags together "+
			"(each map entry and list item counts); expected at most %d", ErrInvalidConfig, config.MaxKeys, config.MaxKeys)
	}
	cfg := DefaultConfig()
	origin := func(key string) string {
		for k := key; k != ""; k = k[:max(strings.LastIndex(k, "."), 0)] {
			if o, ok := origins[k]; ok {
				return o
			}
		}
		return ""
	}
	d := config.Decoder{Problems: &ps, Form: formOf, Origin: origin}
	d.DecodeStruct("", raw, reflect.ValueOf(&cfg).Elem())
	// A key that did not decode kept its default; do not report it twice.
	decoded := ps
	for _, p := range cfg.problems() {
		if !decoded.Has(p.Key) {
			if o := origin(p.Key); o != "" && p.Key != "" {
				p.Message += " (from " + o + ")"
			}
			ps = append(ps, p)
		}
	}
	var rest []error
	if opts.CheckPlugins {
		rest = cfg.checkPlugins(context.Background(), &ps)
	}
	if err := errors.Join(append([]error{ps.Err(keyRank)}, rest...)...); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// fileError drops the path that *fs.PathError repeats.
func fileError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// devOverlay is what -dev changes from the defaults.
func devOverlay() map[string]any {
	return map[string]any{
		"redis":           map[string]any{"mode": ModeEmbedded},
		"ui":              map[string]any{"enabled": true},
		config.PluginsKey: devPlugins(),
	}
}

// mergeLayer merges src into dest like koanf's default merge, except that a
// map-typed key is replaced whole (see schema.replacedWhole).
func mergeLayer(src, dest map[string]any) error {
	mergeAt("", src, dest)
	return nil
}

func mergeAt(prefix string, src, dest map[string]any) {
	for k, v := range src {
		path := config.JoinKey(prefix, k)
		if sm, ok := v.(map[string]any); ok && !configSchema.replacedWhole(path) {
			if dm, ok := dest[k].(map[string]any); ok {
				mergeAt(path, sm, dm)
				continue
			}
		}
		dest[k] = v
	}
}

// envProvider reads the environment variables that name config keys (see
// envPath). A variable set to "" for a key whose type is not a string, list
// or map is a problem, not a zero.
func envProvider(environ []string, ps *config.Problems, origins map[string]string) *env.Env {
	return env.Provider(".", env.Opt{
		EnvironFunc: func() []string { return environ },
		TransformFunc: func(name, value string) (string, any) {
			path, ok := envPath(name)
			if !ok {
				return "", nil
			}
			if l, ok := configSchema.leaf(path); ok && value == "" {
				switch l.typ.Kind() {
				case reflect.String, reflect.Slice, reflect.Map:
				default:
					ps.Add(path, name+" is set but empty (expected "+formOf(path, l.typ)+")")
					return "", nil
				}
			}
			origins[path] = name
			return path, value
		},
	})
}

// envPath maps an environment name to a key. A key's name is its path in
// upper case with "_" for "." (redis.dial_timeout is REDIS_DIAL_TIMEOUT),
// matched against the known keys, as keys hold "_" too. Plugin keys are
// PLUGINS_<ID>_<KEY>: the ID runs to the first "_" after PLUGINS_ and the
// rest is the key, both lower-cased (PLUGINS_WEBHOOK_SIGNING_SECRET is
// plugins.webhook.signing_secret), so an ID with "_" cannot be set this way.
func envPath(name string) (string, bool) {
	if path, ok := configSchema.byEnv[name]; ok {
		return path, true
	}
	rest, ok := strings.CutPrefix(name, "PLUGINS_")
	if !ok {
		return "", false
	}
	id, key, ok := strings.Cut(rest, "_")
	if !ok || !envWord(id, false) || !envWord(key, true) {
		return "", false
	}
	return config.PluginsKey + "." + strings.ToLower(id) + "." + strings.ToLower(key), true
}

// envWord reports whether s is a non-empty run of A-Z and 0-9 (and "_" when
// underscore is true) that does not start or end with "_".
func envWord(s string, underscore bool) bool {
	if s == "" || s[0] == '_' || s[len(s)-1] == '_' {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r == '_' && underscore:
		default:
			return false
		}
	}
	return true
}
