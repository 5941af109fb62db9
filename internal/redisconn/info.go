package redisconn

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// ParseInfo parses the reply of INFO (or CLUSTER INFO, which has the same
// form) into key/value pairs. It is taskhost's one INFO parser. Section
// headers ("# Memory") and blank lines are skipped; a value is everything
// after the first ':', so values that contain ':' (executable paths, keyspace
// lines) are kept whole.
func ParseInfo(info string) map[string]string {
	out := make(map[string]string, 128)
	for line := range strings.Lines(info) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		out[k] = v
	}
	return out
}

// Server is what INFO and DBSIZE say about a server. It holds no secret.
type Server struct {
	Version            string            `json:"version"`           // redis_version
	Mode               string            `json:"mode"`              // redis_mode: standalone, sentinel or cluster
	UptimeSeconds      int64             `json:"uptime_seconds"`    // uptime_in_seconds
	UsedMemory         int64             `json:"used_memory_bytes"` // used_memory
	PeakMemory         int64             `json:"peak_memory_bytes"` // used_memory_peak
	MaxMemory          int64             `json:"maxmemory_bytes"`   // maxmemory; 0 when unbounded
	FragmentationRatio float64           `json:"fragmentation_ratio"`
	ConnectedClients   int64             `json:"connected_clients"`
	DBSize             int64             `json:"dbsize"`
	Info               map[string]string `json:"info,omitempty"` // the whole INFO reply, parsed
}

// ServerFromInfo reads the fields of Server from a parsed INFO reply;
// DBSize, which INFO does not give, is left zero. Missing or malformed
// fields are zero.
func ServerFromInfo(info map[string]string) Server {
	frag, _ := strconv.ParseFloat(info["mem_fragmentation_ratio"], 64)
	return Server{
		Version:            info["redis_version"],
		Mode:               info["redis_mode"],
		UptimeSeconds:      atoi(info["uptime_in_seconds"]),
		UsedMemory:         atoi(info["used_memory"]),
		PeakMemory:         atoi(info["used_memory_peak"]),
		MaxMemory:          atoi(info["maxmemory"]),
		FragmentationRatio: frag,
		ConnectedClients:   atoi(info["connected_clients"]),
		Info:               info,
	}
}

// ReadServer reads INFO and DBSIZE from client. In cluster mode INFO comes
// from one node and DBSIZE is summed over the masters by go-redis.
func ReadServer(ctx context.Context, client redis.UniversalClient) (Server, error) {
	raw, err := client.Info(ctx).Result()
	if err != nil {
		return Server{}, fmt.Errorf("info: %w", err)
	}
	s := ServerFromInfo(ParseInfo(raw))
	if s.DBSize, err = client.DBSize(ctx).Result(); err != nil {
		return s, fmt.Errorf("dbsize: %w", err)
	}
	return s, nil
}

func atoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}
