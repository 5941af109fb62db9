package taskhost

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
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
//     (TestAsynqCompletionFailedDuringOutageIsNotResynced pins it). Such a
//     call arriving here with a cancelled context gets a fresh one, bounded
//     by the connection's timeouts and by the cancelled context's deadline,
//     which asynq sets to the task's lease expiry. Once the lease is gone the
//     call is left to fail as before: the recoverer may have given the task
//     to another worker by then, and a late "done" would remove it from
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

// reviveCompletion gives a completion script that arrives with a cancelled
// context (asynq's syncer retrying it) a fresh context, as long as the
// cancelled one's deadline, the task's lease, has not passed.
func (f *fetchClient) reviveCompletion(ctx context.Context, sha string) (context.Context, context.CancelFunc) {
	if ctx.Err() == nil || !completionScripts[sha] {
		return ctx, func() {}
	}
	lease, ok := ctx.Deadline()
	now := time.Now()
	if !ok || !now.Before(lease) {
		return ctx, func() {}
	}
	if bound := now.Add(f.syncBound); bound.Before(lease) {
		lease = bound
	}
	return context.WithDeadline(context.WithoutCancel(ctx), lease)
}

// syncBound bounds a revived completion: a dial, a write and a read.
func syncBound(r RedisConfig) time.Duration {
	return r.DialTimeout + r.WriteTimeout + r.ReadTimeout
}
