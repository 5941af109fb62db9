package all_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/plugins"
	_ "github.com/taskhost/taskhost/plugins/all"
)

func TestBuiltinsRegistered(t *testing.T) {
	ids := plugins.IDs()
	require.Contains(t, ids, "webhook")
	require.Contains(t, ids, "canary")
}
