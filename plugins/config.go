package plugins

import (
	"strings"

	"github.com/taskhost/taskhost/internal/config"
)

// ErrInvalidConfig is matched, with errors.Is, by every error of
// DecodeConfig and by every *ConfigError. The worker exits with code 2
// (a config error) when a plugin's Provision or Validate returns one.
var ErrInvalidConfig = config.ErrInvalid

// DecodeConfig decodes section, the map under plugins.<id>, into v, a
// pointer to the plugin's config struct, with the rules of the rest of
// taskhost's config; Host.DecodeConfig calls it with the plugin's section.
//   - Fields are named by their koanf tag: `koanf:"timeout"`.
//   - A key that v does not have is an error that names it in full,
//     plugins.<id>.<key>.
//   - A time.Duration takes a string with a unit ("10s", "1m30s"); a bare
//     number other than 0 is refused rather than read as nanoseconds.
//   - Strings, as the environment gives them (PLUGINS_<ID>_<KEY>), become
//     numbers, booleans, lists ("a,b") and maps ("a=1,b=2"); types that
//     implement encoding.TextUnmarshaler take a string.
//   - Fields absent from section keep the values v already has, so set the
//     defaults before calling.
//
// Every problem is reported at once. The error matches ErrInvalidConfig and
// never holds the value of a secret.
func DecodeConfig(id string, section map[string]any, v any) error {
	return config.DecodeSection("plugins."+id, section, v)
}

// ConfigError is a problem that a plugin finds in its own settings after
// decoding them, e.g. a rate that does not parse. It matches
// ErrInvalidConfig, so the worker treats it as a config error.
//
// Err may itself be a config error, such as what Host.Schedule returns for
// a bad cron spec or Host.Limiter for a bad rate: ConfigError then names Key
// in place of the key that error named, so that
//
//	&plugins.ConfigError{Key: "plugins.canary.every", Err: err}
//
// reads "plugins.canary.every: schedule "every minute" for canary:tick: ...",
// with the key once.
type ConfigError struct {
	Key string // the full key, e.g. plugins.webhook.rate
	Err error
}

func (e *ConfigError) Error() string {
	ps := config.Rekey(e.Key, e.Err)
	msgs := make([]string, len(ps))
	for i, p := range ps {
		msgs[i] = p.Message
	}
	return e.Key + ": " + strings.Join(msgs, "; ")
}

// Unwrap returns the underlying error.
func (e *ConfigError) Unwrap() error { return e.Err }

// Is reports whether target is ErrInvalidConfig.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }
