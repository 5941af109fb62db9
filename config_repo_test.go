package taskhost

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/v2"
	"github.com/stretchr/testify/require"
	"github.com/taskhost/taskhost/internal/config"
)

// repoConfig is the config.yaml at the root of the repository.
const repoConfig = "config.yaml"

// TestRepoConfigIsDefault keeps config.yaml true to DefaultConfig(): loaded as a
// user would, it changes nothing.
func TestRepoConfigIsDefault(t *testing.T) {
	t.Parallel()
	cfg, err := LoadConfig(LoadOptions{Path: repoConfig, PathExplicit: true, Environ: noEnv})
	require.NoError(t, err)
	require.Equal(t, DefaultConfig(), cfg)

	// -dev still wins over what the file leaves commented out.
	cfg, err = LoadConfig(LoadOptions{Path: repoConfig, PathExplicit: true, Dev: true, Environ: noEnv})
	require.NoError(t, err)
	require.Equal(t, ModeEmbedded, cfg.Redis.Mode)
	require.True(t, cfg.UI.Enabled)
	require.Contains(t, cfg.Plugins, "webhook")
}

// commentedKey matches a key line that config.yaml shows commented out.
var commentedKey = regexp.MustCompile(`^(\s*)# (\s*[a-z_]+:(\s.*)?)$`)

// TestRepoConfigDocumentsEveryKey uncomments config.yaml's commented keys and
// checks that the result holds every key, with the default value, and that
// the documented plugin sections decode.
func TestRepoConfigDocumentsEveryKey(t *testing.T) {
	t.Parallel()
	body, err := os.ReadFile(repoConfig)
	require.NoError(t, err)
	lines := strings.Split(string(body), "\n")
	for i, line := range lines {
		if m := commentedKey.FindStringSubmatch(line); m != nil {
			lines[i] = m[1] + m[2]
		}
	}
	full := []byte(strings.Join(lines, "\n"))

	raw, err := yaml.Parser().Unmarshal(full)
	require.NoError(t, err)
	ko := koanf.New(".")
	require.NoError(t, ko.Load(confmap.Provider(raw, ""), nil))
	for _, l := range configSchema.leaves {
		require.True(t, ko.Exists(l.path), "config.yaml does not document %s", l.path)
	}

	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, full, 0o600))
	cfg, err := LoadConfig(LoadOptions{Path: path, PathExplicit: true, Environ: noEnv})
	require.NoError(t, err)
	plugins, schedules := cfg.Plugins, cfg.Schedules
	cfg.Plugins, cfg.Schedules = DefaultConfig().Plugins, DefaultConfig().Schedules
	require.Equal(t, DefaultConfig(), cfg)

	three := 3
	require.Equal(t, map[string]ScheduleConfig{"nightly_report": {
		Cron: "0 3 * * *", Type: "webhook:deliver", Queue: "default",
		Payload: `{"url": "https://example.com/hooks/nightly", "method": "POST"}`,
		Options: ScheduleOptions{MaxRetry: &three, Timeout: 5 * time.Minute},
	}}, schedules)

	type webhook struct {
		Timeout       time.Duration `koanf:"timeout"`
		Rate          string        `koanf:"rate"`
		SigningSecret string        `koanf:"signing_secret"`
		AllowHosts    []string      `koanf:"allow_hosts"`
	}
	type canary struct {
		Every      string        `koanf:"every"`
		StaleAfter time.Duration `koanf:"stale_after"`
	}
	var w webhook
	require.NoError(t, config.DecodeSection("plugins.webhook", plugins["webhook"], &w))
	require.Equal(t, webhook{Timeout: 10 * time.Second, Rate: "50-S"}, w)
	var c canary
	require.NoError(t, config.DecodeSection("plugins.canary", plugins["canary"], &c))
	require.Equal(t, canary{Every: "@every 30s", StaleAfter: 2 * time.Minute}, c)
	require.Len(t, plugins, 2)
	require.Equal(t, reflect.Map, reflect.TypeOf(plugins["canary"]).Kind())
}
