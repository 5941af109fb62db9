package outbox_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/outbox"
)

func TestFileStoreKeepsOrderAcrossReopen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "outbox.db")
	s, err := outbox.OpenFile(path)
	require.NoError(t, err)
	require.Equal(t, path, s.Path())
	require.NoError(t, s.Append(outbox.Record{Seq: 3, Data: []byte("c")}, outbox.Record{Seq: 1, Data: []byte("a")}))
	require.NoError(t, s.Append(outbox.Record{Seq: 2, Data: []byte("b")}, outbox.Record{Seq: 300, Data: []byte("z")}))
	require.NoError(t, s.Delete(2, 99))

	_, err = outbox.OpenFile(path)
	require.ErrorContains(t, err, "locked by another process")

	require.NoError(t, s.Close())
	require.NoError(t, s.Close())
	require.ErrorIs(t, s.Append(outbox.Record{Seq: 4}), outbox.ErrClosed)

	s, err = outbox.OpenFile(path)
	require.NoError(t, err)
	defer s.Close()
	var got []string
	require.NoError(t, s.Load(func(r outbox.Record) error {
		got = append(got, string(r.Data)+"@"+string(rune('0'+r.Seq%10)))
		return nil
	}))
	require.Equal(t, []string{"a@1", "c@3", "z@0"}, got, "ascending sequence order, deletions kept")
}

func TestFileOutboxSurvivesReopenWithoutRedis(t *testing.T) {
	t.Parallel()
	_, addr := closedPort(t)
	path := filepath.Join(t.TempDir(), "outbox.db")
	open := func() *fixture {
		s, err := outbox.OpenFile(path)
		require.NoError(t, err)
		return setup(t, addr, outbox.Options{Store: s})
	}
	f := open()
	var ids []string
	for i := range 20 {
		info, err := f.c.Enqueue(mustTask(i))
		require.NoError(t, err)
		ids = append(ids, info.ID)
	}
	oldest := f.c.Oldest()
	_, bytes := f.c.Depth()
	require.NoError(t, f.c.Close())

	g := open()
	n, b := g.c.Depth()
	require.Equal(t, 20, n)
	require.Equal(t, bytes, b)
	require.True(t, oldest.Equal(g.c.Oldest()), "Oldest survives: %v vs %v", oldest, g.c.Oldest())
	for _, id := range ids {
		require.True(t, g.c.Held(id))
	}
	require.Len(t, g.logs.lines("loaded held tasks"), 1)
}
