package redistest

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RedisCLIHint is the message given when redis-cli is not on PATH.
const RedisCLIHint = "redis-cli not found on PATH: install it with `sudo apt-get install -y redis-tools` (Debian/Ubuntu) or run `make test`, which does it for you"

// ErrNoRedisCLI is returned when the redis-cli binary, which forms a
// cluster, cannot be found.
var ErrNoRedisCLI = errors.New(RedisCLIHint)

// ClusterOptions configure StartCluster. The zero value is a cluster
// without a password.
type ClusterOptions struct {
	// Password sets requirepass and masterauth on every node.
	Password string
	// Args are extra redis-server arguments for every node.
	Args []string
	// NodeTimeout is cluster-node-timeout; 2s when zero.
	NodeTimeout time.Duration
}

// Cluster is a Redis Cluster of three masters, each with one replica, all
// on 127.0.0.1, formed with `redis-cli --cluster create`.
type Cluster struct {
	opts    ClusterOptions
	nodes   []*Server
	masters []*Server
}

// NewCluster starts six cluster-enabled servers, forms the cluster and
// waits until every node reports cluster_state:ok and every replica is in
// sync. Close stops it.
func NewCluster(opts ClusterOptions) (*Cluster, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, ErrNoRedisServer
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, ErrNoRedisCLI
	}
	if opts.NodeTimeout <= 0 {
		opts.NodeTimeout = 2 * time.Second
	}
	c := &Cluster{opts: opts}
	if err := c.start(cli); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// StartCluster starts a Cluster for the test and stops it in t.Cleanup.
// It fails the test, with install instructions, when redis-server or
// redis-cli is missing.
func StartCluster(t testing.TB, opts ...ClusterOptions) *Cluster {
	t.Helper()
	var o ClusterOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	c, err := NewCluster(o)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func (c *Cluster) startNode() (*Server, error) {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		bus, err := FreePort() // the default bus port, port+10000, may be taken or out of range
		if err != nil {
			return nil, err
		}
		args := []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf", // relative to the node's own dir
			"--cluster-port", strconv.Itoa(bus),
			"--cluster-node-timeout", strconv.FormatInt(c.opts.NodeTimeout.Milliseconds(), 10),
			"--cluster-announce-ip", "127.0.0.1",
			"--repl-diskless-sync-delay", "0", // replicas sync at once, not after 5s
		}
		if c.opts.Password != "" {
			args = append(args, "--masterauth", c.opts.Password)
		}
		s, err := New(Options{Password: c.opts.Password, Args: append(args, c.opts.Args...)})
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func (c *Cluster) start(cli string) error {
	for i := 0; i < 6; i++ {
		s, err := c.startNode()
		if err != nil {
			return err
		}
		c.nodes = append(c.nodes, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	cmd := exec.CommandContext(ctx, cli, args...)
	if c.opts.Password != "" {
		// REDISCLI_AUTH keeps the password out of the process list.
		cmd.Env = append(cmd.Environ(), "REDISCLI_AUTH="+c.opts.Password)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("redistest: redis-cli --cluster create: %w: %s", err, tail(string(out)))
	}
	return c.waitReady(ctx)
}

// waitReady waits until every node says cluster_state:ok and knows all six
// nodes, and every replica's link to its master is up. It records the
// masters.
func (c *Cluster) waitReady(ctx context.Context) error {
	for _, n := range c.nodes {
		ac := adminClient(n.Addr(), c.opts.Password)
		var last string
		err := poll(ctx, func() bool {
			info, err := ac.ClusterInfo(ctx).Result()
			if err != nil {
				last = err.Error()
				return false
			}
			last = info
			if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:6") {
				return false
			}
			nodes, err := ac.ClusterNodes(ctx).Result()
			if err != nil || !sixNodesThreeShards(nodes) {
				last = nodes
				return false
			}
			repl, err := ac.Info(ctx, "replication").Result()
			if err != nil {
				return false
			}
			return strings.Contains(repl, "role:master") || strings.Contains(repl, "master_link_status:up")
		})
		if err == nil {
			if repl, _ := ac.Info(ctx, "replication").Result(); strings.Contains(repl, "role:master") {
				c.masters = append(c.masters, n)
			}
		}
		_ = ac.Close()
		if err != nil {
			return fmt.Errorf("redistest: cluster node %s not ready: %w: %s; log: %s", n.Addr(), err, tail(last), n.logTail())
		}
	}
	if len(c.masters) != 3 {
		return fmt.Errorf("redistest: cluster has %d masters, want 3", len(c.masters))
	}
	return nil
}

// Addrs are the six nodes' "127.0.0.1:port" addresses, a seed list for
// redis.NewClusterClient.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// Nodes are the six servers, masters and replicas.
func (c *Cluster) Nodes() []*Server { return c.nodes }

// Masters are the three servers that were masters when the cluster formed.
func (c *Cluster) Masters() []*Server { return c.masters }

// Close stops every node and removes their temporary directories.
func (c *Cluster) Close() {
	for _, n := range c.nodes {
		n.Close()
	}
}

// sixNodesThreeShards tells whether a CLUSTER NODES reply shows three
// masters and three replicas, all connected and none failing.
func sixNodesThreeShards(nodes string) bool {
	var masters, replicas int
	for _, line := range strings.Split(strings.TrimSpace(nodes), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || f[7] != "connected" {
			return false
		}
		flags := f[2]
		if strings.Contains(flags, "fail") || strings.Contains(flags, "handshake") || strings.Contains(flags, "noaddr") {
			return false
		}
		switch {
		case strings.Contains(flags, "master"):
			masters++
		case strings.Contains(flags, "slave"):
			replicas++
		}
	}
	return masters == 3 && replicas == 3
}

func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 600 {
		s = s[len(s)-600:]
	}
	return s
}
