package cache_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/cache"
	"github.com/taskhost/taskhost/internal/redistest"
)

const testMaxValue = 1024

// storeKind builds one root store; rc is a client on a live redis-server.
type storeKind struct {
	name  string
	redis bool // values land in Redis
	open  func(t *testing.T, rc *redis.Client) namespacer
}

var storeKinds = []storeKind{
	{"redis", true, func(t *testing.T, rc *redis.Client) namespacer {
		return cache.NewRedis(rc, cache.Options{MaxValueBytes: testMaxValue})
	}},
	{"memory", false, func(t *testing.T, _ *redis.Client) namespacer {
		m := cache.NewMemory(cache.Options{MaxValueBytes: testMaxValue, MemoryMaxEntries: 1000})
		t.Cleanup(m.Close)
		return m
	}},
	{"fallback-ready", true, func(t *testing.T, rc *redis.Client) namespacer {
		f := cache.New(rc, cache.Options{MaxValueBytes: testMaxValue, Logger: quiet, OnRedisError: func(err error) {
			t.Errorf("unexpected Redis error: %v", err)
		}})
		t.Cleanup(f.Close) // no Watch: ready from the start
		return f
	}},
	{"fallback-not-ready", false, func(t *testing.T, rc *redis.Client) namespacer {
		f := cache.New(rc, cache.Options{MaxValueBytes: testMaxValue, Logger: quiet, Watch: (&redistest.Switch{}).Watch})
		t.Cleanup(f.Close) // watched, and never told ready
		return f
	}},
}

var nsSeq atomic.Int64

// setup returns a fresh root store of kind k and a namespace no other test uses.
func setup(t *testing.T, k storeKind, rc *redis.Client) (namespacer, string) {
	t.Helper()
	return k.open(t, rc), fmt.Sprintf("t%d", nsSeq.Add(1))
}

// TestStoreContract runs the same checks against every store.
func TestStoreContract(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rc := newClient(t, srv.Addr())
	tests := []struct {
		name string
		fn   func(t *testing.T, k storeKind, root namespacer, ns string, rc *redis.Client)
	}{
		{"GetSetDelete", testGetSetDelete},
		{"CopiesValues", testCopiesValues},
		{"TTLExpiry", testTTLExpiry},
		{"BadInput", testBadInput},
		{"JSON", testJSON},
		{"GetOrLoadSingleflight", testGetOrLoadSingleflight},
		{"GetOrLoadError", testGetOrLoadError},
		{"NamespaceIsolation", testNamespaceIsolation},
	}
	for _, k := range storeKinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					root, ns := setup(t, k, rc)
					tc.fn(t, k, root, ns, rc)
				})
			}
		})
	}
}

func testGetSetDelete(t *testing.T, k storeKind, root namespacer, ns string, rc *redis.Client) {
	ctx := ctxT(t)
	s := root.Namespace(ns)

	_, err := s.Get(ctx, "k")
	require.ErrorIs(t, err, cache.ErrNotFound)

	require.NoError(t, s.Set(ctx, "k", []byte("v1"), 0))
	got, err := s.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "v1", string(got))

	require.NoError(t, s.Set(ctx, "k", []byte("v2"), time.Minute))
	got, err = s.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "v2", string(got))

	raw, err := rc.Get(ctx, rawKey(ns, "k")).Result()
	if k.redis {
		require.NoError(t, err)
		require.Equal(t, "v2", raw, "the value is in Redis under taskhost:cache:<ns>:<key>")
	} else {
		require.ErrorIs(t, err, redis.Nil, "a memory store writes nothing to Redis")
	}

	require.NoError(t, s.Set(ctx, "empty", nil, 0))
	got, err = s.Get(ctx, "empty")
	require.NoError(t, err, "an empty value is a hit")
	require.Empty(t, got)

	require.NoError(t, s.Delete(ctx, "k"))
	_, err = s.Get(ctx, "k")
	require.ErrorIs(t, err, cache.ErrNotFound)
	require.NoError(t, s.Delete(ctx, "k"), "deleting a missing key is not an error")
}

func testCopiesValues(t *testing.T, _ storeKind, root namespacer, ns string, _ *redis.Client) {
	ctx := ctxT(t)
	s := root.Namespace(ns)
	in := []byte("abc")
	require.NoError(t, s.Set(ctx, "k", in, 0))
	in[0] = 'X'
	out, err := s.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "abc", string(out), "changing the slice after Set must not change the entry")
	out[1] = 'Y'
	again, err := s.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "abc", string(again), "changing a returned slice must not change the entry")
}

func testTTLExpiry(t *testing.T, _ storeKind, root namespacer, ns string, _ *redis.Client) {
	ctx := ctxT(t)
	s := root.Namespace(ns)
	before := time.Now()
	require.NoError(t, s.Set(ctx, "short", []byte("s"), 150*time.Millisecond))
	require.NoError(t, s.Set(ctx, "forever", []byte("f"), 0))
	require.NoError(t, s.Set(ctx, "long", []byte("l"), time.Hour))

	require.Eventually(t, func() bool {
		_, err := s.Get(ctx, "short")
		return errors.Is(err, cache.ErrNotFound)
	}, 3*time.Second, 10*time.Millisecond, "an entry expires after its own ttl")
	require.GreaterOrEqual(t, time.Since(before), 145*time.Millisecond, "not before its ttl (Redis counts whole ms)")

	for _, key := range []string{"forever", "long"} {
		_, err := s.Get(ctx, key)
		require.NoError(t, err, "%s keeps its own ttl", key)
	}
}

func testBadInput(t *testing.T, _ storeKind, root namespacer, ns string, rc *redis.Client) {
	ctx := ctxT(t)
	s := root.Namespace(ns)
	load := func(context.Context) ([]byte, error) { return []byte("x"), nil }

	require.ErrorIs(t, s.Set(ctx, "", []byte("v"), 0), cache.ErrInvalidKey)
	_, err := s.Get(ctx, "")
	require.ErrorIs(t, err, cache.ErrInvalidKey)
	require.ErrorIs(t, s.Delete(ctx, ""), cache.ErrInvalidKey)
	_, err = s.GetOrLoad(ctx, "", 0, load)
	require.ErrorIs(t, err, cache.ErrInvalidKey)

	err = s.Set(ctx, "big", make([]byte, testMaxValue+1), 0)
	require.ErrorIs(t, err, cache.ErrValueTooLarge)
	require.Contains(t, err.Error(), "1025")
	require.Contains(t, err.Error(), "1024")
	require.NoError(t, s.Set(ctx, "max", make([]byte, testMaxValue), 0), "a value of exactly the limit fits")

	err = s.Set(ctx, "neg", []byte("v"), -time.Second)
	require.ErrorIs(t, err, cache.ErrInvalidTTL)
	require.Contains(t, err.Error(), "-1s")
	_, err = s.GetOrLoad(ctx, "neg", -time.Second, load)
	require.ErrorIs(t, err, cache.ErrInvalidTTL)

	_, err = s.GetOrLoad(ctx, "bigload", 0, func(context.Context) ([]byte, error) {
		return make([]byte, testMaxValue+1), nil
	})
	require.ErrorIs(t, err, cache.ErrValueTooLarge)

	for _, key := range []string{"big", "neg", "bigload"} {
		_, err := s.Get(ctx, key)
		require.ErrorIs(t, err, cache.ErrNotFound, "%s was not written", key)
		require.ErrorIs(t, rc.Get(ctx, rawKey(ns, key)).Err(), redis.Nil, "%s was not written to Redis", key)
	}
	n, err := rc.Exists(ctx, rawKey(ns, "")).Result()
	require.NoError(t, err)
	require.Zero(t, n, "the empty key was not written")
}

type user struct {
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

func testJSON(t *testing.T, _ storeKind, root namespacer, ns string, _ *redis.Client) {
	ctx := ctxT(t)
	s := root.Namespace(ns)
	want := user{Name: "Ada", Tags: []string{"a", "b"}}
	require.NoError(t, cache.SetJSON(ctx, s, "u1", want, time.Minute))
	got, err := cache.GetJSON[user](ctx, s, "u1")
	require.NoError(t, err)
	require.Equal(t, want, got)

	_, err = cache.GetJSON[user](ctx, s, "missing")
	require.ErrorIs(t, err, cache.ErrNotFound)

	require.NoError(t, s.Set(ctx, "bad", []byte("not json"), 0))
	_, err = cache.GetJSON[user](ctx, s, "bad")
	require.Error(t, err)
	require.Contains(t, err.Error(), `"bad"`)

	var loads atomic.Int32
	load := func(context.Context) (user, error) { loads.Add(1); return want, nil }
	for range 3 {
		got, err := cache.GetOrLoadJSON(ctx, s, "u2", time.Minute, load)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	require.EqualValues(t, 1, loads.Load(), "later calls hit the cache")
	stored, err := cache.GetJSON[user](ctx, s, "u2")
	require.NoError(t, err)
	require.Equal(t, want, stored)
}

func testGetOrLoadSingleflight(t *testing.T, _ storeKind, root namespacer, ns string, _ *redis.Client) {
	ctx := ctxT(t)
	s := root.Namespace(ns)
	const n = 16
	var loads atomic.Int32
	release := make(chan struct{})
	load := func(context.Context) ([]byte, error) {
		loads.Add(1)
		<-release
		return []byte("loaded"), nil
	}

	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			<-start
			v, err := s.GetOrLoad(ctx, "k", time.Minute, load)
			if err == nil && string(v) != "loaded" {
				err = fmt.Errorf("got %q", v)
			}
			errs <- err
		})
	}
	close(start)
	require.Eventually(t, func() bool { return loads.Load() >= 1 }, 5*time.Second, time.Millisecond)
	time.Sleep(50 * time.Millisecond) // let the other callers reach the miss and join
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.EqualValues(t, 1, loads.Load(), "concurrent misses make one load")
	got, err := s.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "loaded", string(got))
}

func testGetOrLoadError(t *testing.T, _ storeKind, root namespacer, ns string, _ *redis.Client) {
	ctx := ctxT(t)
	s := root.Namespace(ns)
	boom := errors.New("boom")
	var loads atomic.Int32
	failing := func(context.Context) ([]byte, error) { loads.Add(1); return nil, boom }

	_, err := s.GetOrLoad(ctx, "k", time.Minute, failing)
	require.ErrorIs(t, err, boom, "the loader's error is returned")
	_, err = s.Get(ctx, "k")
	require.ErrorIs(t, err, cache.ErrNotFound, "nothing is cached after a failed load")
	_, err = s.GetOrLoad(ctx, "k", time.Minute, failing)
	require.ErrorIs(t, err, boom)
	require.EqualValues(t, 2, loads.Load(), "a failed load is not remembered")

	v, err := s.GetOrLoad(ctx, "k", time.Minute, func(context.Context) ([]byte, error) { return []byte("ok"), nil })
	require.NoError(t, err)
	require.Equal(t, "ok", string(v))
}

func testNamespaceIsolation(t *testing.T, k storeKind, root namespacer, ns string, rc *redis.Client) {
	ctx := ctxT(t)
	a, b := root.Namespace(ns+"a"), root.Namespace(ns+"b")
	require.NoError(t, a.Set(ctx, "k", []byte("from a"), 0))
	_, err := b.Get(ctx, "k")
	require.ErrorIs(t, err, cache.ErrNotFound, "b does not see a's key")

	require.NoError(t, b.Set(ctx, "k", []byte("from b"), 0))
	got, err := a.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "from a", string(got))

	require.NoError(t, a.Delete(ctx, "k"))
	got, err = b.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "from b", string(got), "deleting in a leaves b alone")

	// Two handles on the same namespace share its keys.
	got, err = root.Namespace(ns+"b").Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "from b", string(got))

	if k.redis {
		raw, err := rc.Get(ctx, rawKey(ns+"b", "k")).Result()
		require.NoError(t, err)
		require.Equal(t, "from b", raw)
	}
	// A key with ':' cannot reach another namespace, since namespaces have none.
	require.NoError(t, a.Set(ctx, "x:y", []byte("colon"), 0))
	got, err = a.Get(ctx, "x:y")
	require.NoError(t, err)
	require.Equal(t, "colon", string(got))
}

func TestValidateNamespace(t *testing.T) {
	t.Parallel()
	require.NoError(t, cache.ValidateNamespace("webhook"))
	require.NoError(t, cache.ValidateNamespace("my-plugin.v2"))
	for _, bad := range []string{"", "a:b", ":"} {
		err := cache.ValidateNamespace(bad)
		require.ErrorIs(t, err, cache.ErrInvalidNamespace, "%q", bad)
	}
	m := cache.NewMemory(cache.Options{})
	defer m.Close()
	require.PanicsWithValue(t, `cache: invalid namespace: "a:b" contains ':'`, func() { m.Namespace("a:b") })
	require.Panics(t, func() { m.Namespace("") })
}

func TestStats(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	m := cache.NewMemory(cache.Options{})
	defer m.Close()
	s := m.Namespace("stats")
	require.NoError(t, s.Set(ctx, "k", []byte("v"), 0))
	_, _ = s.Get(ctx, "k")
	_, _ = s.Get(ctx, "k")
	_, _ = s.Get(ctx, "missing")
	st := m.Stats()
	require.EqualValues(t, 2, st.Hits)
	require.EqualValues(t, 1, st.Misses)
}
