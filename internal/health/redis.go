package health

import (
	"bufio"
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// PingFunc returns a Source.Ping that times one PING on c.
func PingFunc(c redis.UniversalClient) func(context.Context) (time.Duration, error) {
	return func(ctx context.Context) (time.Duration, error) {
		begin := time.Now()
		if err := c.Ping(ctx).Err(); err != nil {
			return 0, fmt.Errorf("ping: %w", err)
		}
		return time.Since(begin), nil
	}
}

// InfoFunc returns a Source.Redis that reads INFO and DBSIZE from c. On a
// cluster client INFO comes from one master, DBSIZE is summed over the
// masters (go-redis does that), and Cluster is filled by ClusterInfoFunc.
func InfoFunc(c redis.UniversalClient) func(context.Context) (RedisInfo, error) {
	cluster, _ := c.(*redis.ClusterClient)
	return func(ctx context.Context) (RedisInfo, error) {
		text, err := c.Info(ctx).Result()
		if err != nil {
			return RedisInfo{}, fmt.Errorf("info: %w", err)
		}
		info := ParseInfo(text)
		if info.DBSize, err = c.DBSize(ctx).Result(); err != nil {
			return RedisInfo{}, fmt.Errorf("dbsize: %w", err)
		}
		if cluster != nil {
			ci, err := ClusterInfoFunc(cluster)(ctx)
			if err != nil {
				return RedisInfo{}, err
			}
			info.Cluster = &ci
		}
		return info, nil
	}
}

// ClusterInfoFunc returns a func that reads CLUSTER INFO and CLUSTER NODES
// from a master of c. ReachableNodes is how many nodes that master sees as
// connected and not failing; it costs one round trip, not one per node.
func ClusterInfoFunc(c *redis.ClusterClient) func(context.Context) (ClusterInfo, error) {
	return func(ctx context.Context) (ClusterInfo, error) {
		text, err := c.ClusterInfo(ctx).Result()
		if err != nil {
			return ClusterInfo{}, fmt.Errorf("cluster info: %w", err)
		}
		nodes, err := c.ClusterNodes(ctx).Result()
		if err != nil {
			return ClusterInfo{}, fmt.Errorf("cluster nodes: %w", err)
		}
		ci := ParseClusterInfo(text)
		ci.ReachableNodes = ReachableNodes(nodes)
		return ci, nil
	}
}

// ReachableNodes counts the nodes in the text of a CLUSTER NODES reply that
// the answering node sees as reachable: itself, and every other node whose
// link is connected and that is not flagged fail, fail? (pfail), noaddr or
// handshake.
func ReachableNodes(text string) int64 {
	var n int64
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		// <id> <ip:port@cport> <flags> <master> <ping-sent> <pong-recv> <config-epoch> <link-state> <slot>...
		f := strings.Fields(sc.Text())
		if len(f) < 8 {
			continue
		}
		flags := strings.Split(f[2], ",")
		if slices.ContainsFunc(flags, func(fl string) bool {
			return fl == "fail" || fl == "fail?" || fl == "noaddr" || fl == "handshake"
		}) {
			continue
		}
		if slices.Contains(flags, "myself") || f[7] == "connected" {
			n++
		}
	}
	return n
}

// ParseClusterInfo reads the fields of ClusterInfo from the text of a
// CLUSTER INFO reply; ReachableNodes is left zero.
func ParseClusterInfo(text string) ClusterInfo {
	var ci ClusterInfo
	eachField(text, func(key, val string, i int64) {
		switch key {
		case "cluster_state":
			ci.State = val
		case "cluster_slots_ok":
			ci.SlotsOK = i
		case "cluster_size":
			ci.Size = i
		case "cluster_known_nodes":
			ci.KnownNodes = i
		}
	})
	return ci
}

// ParseInfo reads the fields of RedisInfo from the text of an INFO reply.
// DBSize is not in INFO and is left zero; unknown or malformed fields are skipped.
func ParseInfo(text string) RedisInfo {
	var info RedisInfo
	eachField(text, func(key, val string, i int64) {
		switch key {
		case "redis_version":
			info.Version = val
		case "uptime_in_seconds":
			info.UptimeSeconds = i
		case "used_memory":
			info.UsedMemoryBytes = i
		case "used_memory_peak":
			info.UsedMemoryPeakBytes = i
		case "maxmemory":
			info.MaxMemoryBytes = i
		case "mem_fragmentation_ratio":
			info.MemFragmentationRatio, _ = strconv.ParseFloat(val, 64)
		case "connected_clients":
			info.ConnectedClients = i
		}
	})
	return info
}

// eachField calls fn with each "key:value" line of an INFO-style reply and
// the value read as an integer (0 when it is not one); other lines are skipped.
func eachField(text string, fn func(key, val string, i int64)) {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		key, val, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok {
			continue
		}
		i, _ := strconv.ParseInt(val, 10, 64)
		fn(key, val, i)
	}
}

// QueueInspector is the part of *asynq.Inspector that QueuesFunc uses.
type QueueInspector interface {
	Queues() ([]string, error)
	GetQueueInfo(queue string) (*asynq.QueueInfo, error)
}

// QueuesFunc returns a Source.Queues that reads every queue's stats from in,
// sorted by name. The Inspector takes no context, so the report's deadline
// is what bounds a slow Redis; ctx is checked between queues.
func QueuesFunc(in QueueInspector) func(context.Context) ([]Queue, error) {
	return func(ctx context.Context) ([]Queue, error) {
		names, err := in.Queues()
		if err != nil {
			return nil, fmt.Errorf("list queues: %w", err)
		}
		sort.Strings(names)
		out := make([]Queue, 0, len(names))
		for _, name := range names {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			qi, err := in.GetQueueInfo(name)
			if err != nil {
				return nil, fmt.Errorf("queue %q: %w", name, err)
			}
			out = append(out, QueueFromInfo(qi))
		}
		return out, nil
	}
}

// QueueFromInfo converts asynq's QueueInfo.
func QueueFromInfo(qi *asynq.QueueInfo) Queue {
	return Queue{
		Name: qi.Queue, Size: qi.Size,
		Pending: qi.Pending, Active: qi.Active, Scheduled: qi.Scheduled,
		Retry: qi.Retry, Archived: qi.Archived, Completed: qi.Completed,
		LatencySeconds: qi.Latency.Seconds(),
		ProcessedToday: qi.Processed, FailedToday: qi.Failed,
		ProcessedTotal: qi.ProcessedTotal, FailedTotal: qi.FailedTotal,
		Paused: qi.Paused,
	}
}
