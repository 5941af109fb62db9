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

	"github.com/taskhost/taskhost/internal/redisconn"
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

// InfoFunc returns a Source.Redis that reads INFO and DBSIZE from c
// (redisconn.ReadServer). On a cluster client INFO comes from one master,
// DBSIZE is summed over the masters (go-redis does that), and Cluster is
// filled by ClusterInfoFunc.
func InfoFunc(c redis.UniversalClient) func(context.Context) (RedisInfo, error) {
	cluster, _ := c.(*redis.ClusterClient)
	return func(ctx context.Context) (RedisInfo, error) {
		s, err := redisconn.ReadServer(ctx, c)
		if err != nil {
			return RedisInfo{}, err
		}
		info := redisInfo(s)
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

// redisInfo is the report's view of s.
func redisInfo(s redisconn.Server) RedisInfo {
	return RedisInfo{
		Version:               s.Version,
		UptimeSeconds:         s.UptimeSeconds,
		UsedMemoryBytes:       s.UsedMemory,
		UsedMemoryPeakBytes:   s.PeakMemory,
		MaxMemoryBytes:        s.MaxMemory,
		MemFragmentationRatio: s.FragmentationRatio,
		ConnectedClients:      s.ConnectedClients,
		DBSize:                s.DBSize,
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
// CLUSTER INFO reply (redisconn.ParseInfo); ReachableNodes is left zero.
func ParseClusterInfo(text string) ClusterInfo {
	f := redisconn.ParseInfo(text)
	num := func(key string) int64 { n, _ := strconv.ParseInt(f[key], 10, 64); return n }
	return ClusterInfo{
		State:      f["cluster_state"],
		SlotsOK:    num("cluster_slots_ok"),
		Size:       num("cluster_size"),
		KnownNodes: num("cluster_known_nodes"),
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
