package plugins_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/plugins"
)

type fake struct{ info plugins.Info }

func (f fake) PluginInfo() plugins.Info { return f.info }

func newFake(id string) fake {
	var f fake
	f.info = plugins.Info{ID: id, New: func() plugins.Plugin { return newFake(id) }}
	return f
}

// Not parallel: these tests swap the package's registry.

func TestRegisterLookupIDs(t *testing.T) {
	plugins.EmptyRegistry(t)
	plugins.Register(newFake("zeta"))
	plugins.Register(newFake("alpha"))

	require.Equal(t, []string{"alpha", "zeta"}, plugins.IDs())
	info, ok := plugins.Lookup("zeta")
	require.True(t, ok)
	require.Equal(t, "zeta", info.ID)
	require.Equal(t, "zeta", info.New().PluginInfo().ID)
	_, ok = plugins.Lookup("missing")
	require.False(t, ok)
}

func TestRegisterPanics(t *testing.T) {
	tests := []struct {
		name string
		p    plugins.Plugin
		msg  string
	}{
		{"empty ID", fake{plugins.Info{New: func() plugins.Plugin { return nil }}}, "plugins: Register with an empty ID"},
		{"nil New", fake{plugins.Info{ID: "x"}}, `plugins: Register "x" with a nil New`},
		{"duplicate ID", newFake("dup"), `plugins: plugin "dup" registered twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plugins.EmptyRegistry(t)
			plugins.Register(newFake("dup"))
			require.PanicsWithValue(t, tt.msg, func() { plugins.Register(tt.p) })
			require.Equal(t, []string{"dup"}, plugins.IDs(), "a refused plugin must not be registered")
		})
	}
}
