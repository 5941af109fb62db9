package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// commandStats reads INFO commandstats: calls per command. Commands that
// scripts run are counted too, under their own names.
func commandStats(ctx context.Context, rdb *redis.Client) (map[string]int64, error) {
	s, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, fmt.Errorf("INFO commandstats: %w", err)
	}
	out := map[string]int64{}
	for _, line := range strings.Split(s, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("INFO commandstats: %s: %w", name, err)
				}
				out[strings.TrimPrefix(name, "cmdstat_")] = n
			}
		}
	}
	return out, nil
}

// commandsDelta is after minus before, less the one INFO that took the
// before snapshot.
func commandsDelta(before, after map[string]int64) map[string]int64 {
	d := map[string]int64{}
	for k, v := range after {
		if n := v - before[k]; n > 0 {
			d[k] = n
		}
	}
	if d["info"]--; d["info"] <= 0 {
		delete(d, "info")
	}
	return d
}

func sumCalls(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// scriptCalls counts script invocations (each one round trip from asynq).
func scriptCalls(m map[string]int64) int64 {
	return m["evalsha"] + m["eval"] + m["evalsha_ro"] + m["eval_ro"] + m["fcall"]
}

// perUnit divides each count by d, for a breakdown per task or per second.
func perUnit(m map[string]int64, d float64) map[string]float64 {
	out := make(map[string]float64, len(m))
	for k, v := range m {
		out[k] = float64(v) / d
	}
	return out
}

// redisCPU reads INFO cpu: the CPU seconds the server has used, user and
// system.
func redisCPU(ctx context.Context, rdb *redis.Client) (float64, error) {
	s, err := rdb.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, fmt.Errorf("INFO cpu: %w", err)
	}
	var sum float64
	for _, line := range strings.Split(s, "\n") {
		name, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (name == "used_cpu_user" || name == "used_cpu_sys") {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("INFO cpu: %s: %w", name, err)
			}
			sum += f
		}
	}
	return sum, nil
}

// statsWindow snapshots INFO commandstats and the server's CPU; end returns
// the commands since, and cpu the server's CPU seconds from open to end.
// The INFO cpu calls fall outside the counted commands.
type statsWindow struct {
	rdb              *redis.Client
	before           map[string]int64
	cpuBefore, cpuIn float64
}

func openWindow(ctx context.Context, rdb *redis.Client) (*statsWindow, error) {
	c, err := redisCPU(ctx, rdb)
	if err != nil {
		return nil, err
	}
	b, err := commandStats(ctx, rdb)
	if err != nil {
		return nil, err
	}
	return &statsWindow{rdb: rdb, before: b, cpuBefore: c}, nil
}

func (w *statsWindow) end(ctx context.Context) (map[string]int64, error) {
	a, err := commandStats(ctx, w.rdb)
	if err != nil {
		return nil, err
	}
	c, err := redisCPU(ctx, w.rdb)
	if err != nil {
		return nil, err
	}
	w.cpuIn = c - w.cpuBefore
	return commandsDelta(w.before, a), nil
}

// cpu is the server's CPU seconds within the window, once it has ended.
func (w *statsWindow) cpu() float64 { return w.cpuIn }

func redisVersion(ctx context.Context, rdb *redis.Client) string {
	s, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			return v
		}
	}
	return "unknown"
}
