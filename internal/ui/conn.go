package ui

import "github.com/redis/go-redis/v9"

// sharedConn is the asynq.RedisConnOpt handed to asynqmon. asynq's
// RedisConnOpt is an interface whose one method returns a client; this one
// returns the runtime's client instead of dialing a new pool.
//
// asynqmon v0.7.2's New (handler.go) calls MakeRedisClient twice: once for
// its own client, used only by the /api/redis_info handler (handler.go:63,
// 200-205), and once through asynq.NewInspector (handler.go:67, asynq
// inspector.go:29-36), which wraps it without closing it. The only code that
// closes either is HTTPHandler.Close (handler.go:78 and 84-91). This package
// never calls it, and New returns the asynqmon handler wrapped in
// middleware, so no caller can reach its Close either: the client is closed
// only by its owner, the runtime.
type sharedConn struct{ client redis.UniversalClient }

// MakeRedisClient returns the shared client; it is called only by asynqmon.New.
func (s sharedConn) MakeRedisClient() any { return s.client }
