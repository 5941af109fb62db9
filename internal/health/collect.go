package health

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// Report runs the checks and collects the sections concurrently and returns
// by the probe timeout, whatever they do.
func (h *Handler) Report(ctx context.Context) Report {
	begin := time.Now()
	ctx, cancel := context.WithTimeout(ctx, h.budget())
	defer cancel()
	full := h.opts.Detail != DetailMinimal
	src := h.opts.Source

	rep := Report{
		Warnings:  []string{},
		Version:   h.opts.Version,
		StartedAt: h.opts.StartedAt.UTC(),
		Detail:    h.opts.Detail,
		Fallbacks: []Fallback{},
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		sources []SourceResult
		ping    *time.Duration
		info    *RedisInfo
	)
	record := func(s SourceResult) {
		mu.Lock()
		sources = append(sources, s)
		mu.Unlock()
	}
	run := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }

	run(func() { rep.Checks = h.opts.Registry.Run(ctx) })
	run(func() {
		o := h.readiness(ctx)
		if h.opts.Ready != nil {
			record(sourceResult("ready", o))
		}
		rep.Ready, rep.ReadyReason = o.val.ok, Redact(o.val.reason)
		if o.err != nil {
			rep.Ready, rep.ReadyReason = false, Redact(o.err.Error())
		}
	})
	if src.Connection != nil {
		run(func() {
			o := h.connection.do(ctx, h.budget(), src.Connection)
			record(sourceResult("connection", o))
			if o.err == nil {
				c := o.val
				rep.Connection = &c
			}
		})
	}
	if src.Fallbacks != nil {
		run(func() {
			o := h.fallbacks.do(ctx, h.budget(), src.Fallbacks)
			record(sourceResult("fallbacks", o))
			if o.err == nil && o.val != nil {
				rep.Fallbacks = o.val
			}
		})
	}
	var warnings []string
	if src.Warnings != nil {
		run(func() {
			o := h.warnings.do(ctx, h.budget(), src.Warnings)
			record(sourceResult("warnings", o))
			if o.err == nil {
				warnings = o.val
			}
		})
	}
	if src.Config != nil {
		run(func() {
			o := h.config.do(ctx, h.budget(), src.Config)
			record(sourceResult("config", o))
			if o.err == nil {
				c := o.val
				if c.LastReload != nil {
					lr := *c.LastReload
					lr.Error = Redact(lr.Error)
					c.LastReload = &lr
				}
				rep.Config = &c
			}
		})
	}
	if full && src.Ping != nil {
		run(func() {
			o := h.ping.do(ctx, h.budget(), src.Ping)
			record(sourceResult("ping", o))
			if o.err == nil {
				ping = &o.val
			}
		})
	}
	if full && src.Redis != nil {
		run(func() {
			o := h.redis.do(ctx, h.budget(), src.Redis)
			record(sourceResult("redis", o))
			if o.err == nil {
				info = &o.val
			}
		})
	}
	if full && src.Queues != nil {
		run(func() {
			o := h.queues.do(ctx, h.budget(), src.Queues)
			record(sourceResult("queues", o))
			if o.err == nil {
				rep.Queues = append([]Queue{}, o.val...)
			}
		})
	}
	if full && src.Fleet != nil {
		run(func() {
			o := h.fleet.do(ctx, h.budget(), src.Fleet)
			record(sourceResult("fleet", o))
			if o.err == nil {
				f := o.val
				rep.Fleet = &f
			}
		})
	}
	if src.Schedules != nil {
		run(func() {
			o := h.schedules.do(ctx, h.budget(), src.Schedules)
			record(sourceResult("schedules", o))
			if o.err == nil && len(o.val) > 0 {
				rep.Schedules = append([]Schedule{}, o.val...)
				for i := range rep.Schedules {
					rep.Schedules[i].LastError = Redact(rep.Schedules[i].LastError)
				}
			}
		})
	}
	wg.Wait()

	now := time.Now()
	rep.CheckedAt = now.UTC()
	rep.UptimeSeconds = seconds(now.Sub(h.opts.StartedAt))
	sort.Slice(sources, func(i, j int) bool { return sources[i].Name < sources[j].Name })
	rep.Sources = append([]SourceResult{}, sources...)
	if rep.Checks == nil {
		rep.Checks = []CheckResult{}
	}
	if ping != nil || info != nil {
		rep.Redis = &RedisReport{RedisInfo: info}
		if ping != nil {
			p := ms(*ping)
			rep.Redis.PingMS = &p
		}
	}
	if c := rep.Connection; c != nil {
		c.Target, c.Master, c.LastError = Redact(c.Target), Redact(c.Master), Redact(c.LastError)
		if !c.Since.IsZero() {
			c.SinceSeconds = seconds(now.Sub(c.Since))
		}
		if c.CameBackEmptyAt != nil {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf(
				"redis came back empty at %s: tasks queued before then were lost on the server side",
				c.CameBackEmptyAt.UTC().Format(time.RFC3339)))
		}
	}
	for _, w := range warnings {
		rep.Warnings = append(rep.Warnings, Redact(w))
	}
	if !full {
		h.strip(&rep)
	}
	rep.evaluate()
	rep.DurationMS = ms(time.Since(begin))
	h.logChange(rep)
	return rep
}

// strip removes what DetailMinimal leaves out.
func (h *Handler) strip(rep *Report) {
	rep.Redis, rep.Queues = nil, nil
	if rep.Connection != nil {
		rep.Connection.Target, rep.Connection.Master, rep.Connection.LastError = "", "", ""
	}
	for i := range rep.Checks {
		rep.Checks[i].Error = ""
	}
	if rep.Config != nil && rep.Config.LastReload != nil {
		rep.Config.LastReload.Error = ""
	}
	for i := range rep.Sources {
		rep.Sources[i].Error = ""
	}
	for i := range rep.Schedules {
		rep.Schedules[i].LastError = ""
	}
}

func (h *Handler) logChange(rep Report) {
	h.mu.Lock()
	prev := h.lastStatus
	h.lastStatus = rep.Status
	h.mu.Unlock()
	if prev == rep.Status {
		return
	}
	level := slog.LevelInfo
	if rep.Status != StatusOK {
		level = slog.LevelWarn
	}
	if prev == "" {
		prev = "unknown"
	}
	h.log.Log(context.Background(), level, "health status changed",
		"from", string(prev), "to", string(rep.Status), "reasons", rep.Reasons)
}

func sourceResult[T any](name string, o outcome[T]) SourceResult {
	s := SourceResult{Name: name, Status: o.status(), DurationMS: ms(o.dur)}
	if o.err != nil {
		s.Error = Redact(o.err.Error())
	}
	return s
}

func seconds(d time.Duration) float64 { return float64(d.Milliseconds()) / 1000 }
