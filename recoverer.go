package taskhost

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskhost/taskhost/internal/connerr"
)

// Two corrections to asynq v0.26.0 that taskhost makes in the client each
// asynq server runs on (fetchClient), recognizing asynq's scripts by their
// SHA-1 as the wake-ups recognize the dequeue (TestAsynqScriptsPinned fails
// when an asynq upgrade changes one of them):
//
//   - One recoverer per process. Every asynq server runs a recoverer that
//     retries the tasks whose lease expired; with worker.fetchers servers in
//     one process, they raced for the same tasks and all but one logged
//     "could not retry lease expired task: NOT FOUND". The extra fetchers'
//     clients answer the recoverer's two scripts (list the expired leases,
//     reclaim stale aggregation sets) with an empty result, so only the
//     first fetcher's recoverer works. Other processes still recover too:
//     a task that two processes' recoverers find at once is retried by one;
//     the other logs the same warning (rare: each runs once a minute).
//
//   - Completions survive an outage. When marking a task done, completed,
//     retried or archived fails, asynq's processor hands the retry to its
//     syncer with the context of the first attempt, which its own
//     `defer cancel()` has already cancelled: the retry can never succeed and
//     the task runs again once its lease has expired
//     (TestAsynqCompletionFailedDuringOutageIsNotResynced pins it). Here such
//     a call is retried inline until Redis answers, and the syncer's retry
//     gets a fresh context, both bounded by the task's lease, which asynq
//     sets as the call's deadline (see completion). Once the lease is gone
//     the call is left to fail as before: the recoverer may have given the
//     task to another worker by then, and a late "done" would remove it from
//     under that worker.

// SHA-1s of asynq v0.26.0's scripts (internal/rdb/rdb.go).
const (
	listLeaseExpiredSHA     = "16988a462595f6ee317be300951533b004f27f5c" // listLeaseExpiredCmd
	reclaimAggregationSHA   = "7c08714194a1ed81153180b36590c51f1ccd7d42" // reclaimStateAggregationSetsCmd
	doneSHA                 = "1241eaa1c73409baaf1fea0c08d203a4911bda15" // doneCmd
	doneUniqueSHA           = "a2631c71357a54b4c3e7450b1757e7f3f49d6c81" // doneUniqueCmd
	markAsCompleteSHA       = "117dca952700588e559c7ace20b925096d587974" // markAsCompleteCmd
	markAsCompleteUniqueSHA = "ce6833ccce362a8c0ee53beee413341daf52e39c" // markAsCompleteUniqueCmd
	retrySHA                = "65fa409c88198a681c53e0892d8276eca0145694" // retryCmd
	archiveSHA              = "9c3b1eb9947ce2ee5304ac013a0a365ec364fd2d" // archiveCmd
)

// pinnedScripts names each pinned script by the variable that holds it in
// asynq's internal/rdb/rdb.go, for TestAsynqScriptsPinned.
var pinnedScripts = map[string]string{
	"dequeueCmd":                     dequeueScriptSHA,
	"listLeaseExpiredCmd":            listLeaseExpiredSHA,
	"reclaimStateAggregationSetsCmd": reclaimAggregationSHA,
	"doneCmd":                        doneSHA,
	"doneUniqueCmd":                  doneUniqueSHA,
	"markAsCompleteCmd":              markAsCompleteSHA,
	"markAsCompleteUniqueCmd":        markAsCompleteUniqueSHA,
	"retryCmd":                       retrySHA,
	"archiveCmd":                     archiveSHA,
}

// completionScripts are the scripts that end a task's run and that asynq's
// syncer retries.
var completionScripts = map[string]bool{
	doneSHA: true, doneUniqueSHA: true, markAsCompleteSHA: true, markAsCompleteUniqueSHA: true,
	retrySHA: true, archiveSHA: true,
}

// skipRecovery answers the recoverer's scripts on the extra fetchers: no
// expired leases, no stale aggregation sets. nil means run the script.
func (f *fetchClient) skipRecovery(ctx context.Context, sha string) *redis.Cmd {
	if !f.notRecoverer {
		return nil
	}
	switch sha {
	case listLeaseExpiredSHA:
		cmd := redis.NewCmd(ctx)
		cmd.SetVal([]any{})
		return cmd
	case reclaimAggregationSHA:
		cmd := redis.NewCmd(ctx)
		cmd.SetVal("OK")
		return cmd
	}
	return nil
}

// completion runs a completion script (run) so that it survives an outage:
//
//   - A call from asynq's processor, whose context ends at the task's lease
//     expiry, that fails because Redis cannot serve is tried again, every
//     completionRetry and as soon as Redis is ready, until it gets an answer,
//     the lease expires or fetching stops. The task's worker goroutine waits
//     meanwhile (nothing can be fetched anyway), so the acknowledgement
//     lands within moments of Redis' return, not at asynq's syncer's next
//     round up to 5 s later, which a worker killed in between would lose.
//   - A call that arrives with a cancelled context is asynq's syncer
//     retrying such a call after its first attempt failed (the inline
//     retries gave up because fetching stopped): it gets a fresh context
//     bounded by syncBound and the lease; past the lease it is left to fail.
//   - A retry answered "NOT FOUND" means the task is no longer active: within
//     its lease, only the earlier attempt, applied by Redis but whose reply
//     was lost, can have moved it. The retry counts as done.
func (f *fetchClient) completion(ctx context.Context, run func(context.Context) *redis.Cmd) *redis.Cmd {
	lease, hasLease := ctx.Deadline()
	if ctx.Err() != nil {
		now := time.Now()
		if !hasLease || !now.Before(lease) || f.syncBound <= 0 {
			// Not sent: the autopipeliner would send it whatever its
			// context says, and past the lease it could remove the task
			// from under the worker the recoverer gave it to.
			cmd := redis.NewCmd(ctx)
			cmd.SetErr(ctx.Err())
			return cmd
		}
		rctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), earliest(lease, now.Add(f.syncBound)))
		defer cancel()
		return settled(rctx, run(rctx))
	}
	cmd := run(ctx)
	if !hasLease || f.syncBound <= 0 {
		return cmd
	}
	return retryWhileDown(context.WithoutCancel(ctx), f.halt, lease, f.syncBound, f.await, cmd, run)
}

// retryWhileDown retries a completion (run) whose last try (cmd) failed
// because Redis cannot serve: every completionRetry, and as soon as await
// reports Redis ready, until it gets an answer, the lease ends or stop
// closes. Each try runs on base, bounded by bound and the lease; one
// answered "NOT FOUND" counts as done (settled). It returns the last try.
func retryWhileDown(base context.Context, stop <-chan struct{}, lease time.Time, bound time.Duration,
	await func(context.Context) bool, cmd *redis.Cmd, run func(context.Context) *redis.Cmd) *redis.Cmd {
	for connerr.Down(cmd.Err()) {
		if !waitRetry(base, stop, lease, await) {
			return cmd
		}
		rctx, cancel := context.WithDeadline(base, earliest(lease, time.Now().Add(bound)))
		cmd = settled(rctx, run(rctx))
		cancel()
	}
	return cmd
}

// completionRetry is the pause between inline attempts at a completion
// while Redis cannot serve; a move to ready ends it early.
const completionRetry = 250 * time.Millisecond

// waitRetry waits completionRetry, or less when await reports Redis
// ready. It returns false when the lease ends or stop closes first.
func waitRetry(base context.Context, stop <-chan struct{}, lease time.Time, await func(context.Context) bool) bool {
	wctx, cancel := context.WithDeadline(base, earliest(lease, time.Now().Add(completionRetry)))
	defer cancel()
	if await != nil {
		await(wctx)
	}
	select {
	case <-stop:
		return false
	default:
	}
	if await == nil {
		select {
		case <-wctx.Done():
		case <-stop:
			return false
		}
	}
	return time.Now().Before(lease)
}

// settled turns the "NOT FOUND" of a retried completion into success: the
// earlier attempt was applied.
func settled(ctx context.Context, cmd *redis.Cmd) *redis.Cmd {
	if err := cmd.Err(); err == nil || err.Error() != "NOT FOUND" {
		return cmd
	}
	ok := redis.NewCmd(ctx)
	ok.SetVal("OK")
	return ok
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// syncBound bounds a revived completion: a dial, a write and a read.
func syncBound(r RedisConfig) time.Duration {
	return r.DialTimeout + r.WriteTimeout + r.ReadTimeout
}
