package redisconn

import (
	"log/slog"
	"time"
)

// DefaultMarkerKey is the key whose absence after a run_id change shows that
// Redis came back empty.
const DefaultMarkerKey = "taskhost:marker"

// MonitorOptions configure a Monitor. Zero values take the defaults noted.
type MonitorOptions struct {
	Logger       *slog.Logger  // default slog.Default(); component=redis is added
	Target       string        // from Describe; logged with every transition
	PingInterval time.Duration // probe period while ready; default 1 s
	BackoffMin   time.Duration // first reconnect delay; default 250 ms
	BackoffMax   time.Duration // cap of the exponential backoff; default 2 s
	ProbeTimeout time.Duration // deadline of one probe; default 1 s
	DownAfter    time.Duration // failing this long turns reconnecting into down; default 1 s
	MarkerKey    string        // default DefaultMarkerKey
	// NoRestartCheck turns off the empty-restart check, for a Redis that
	// cannot restart without the process (the embedded one).
	NoRestartCheck bool
	// Annotate, when set, returns attributes to add to the log line of a
	// transition; it runs on the monitor's goroutine before the line is
	// written and must not block. The runtime adds how many of asynq's
	// error lines it folded during an outage.
	Annotate func(from, to State) []any
}

// MonitorOptionsFrom returns the options for cfg's monitor settings.
func MonitorOptionsFrom(cfg Config, logger *slog.Logger) MonitorOptions {
	return MonitorOptions{
		Logger:       logger,
		Target:       Describe(cfg),
		PingInterval: cfg.PingInterval,
		BackoffMin:   cfg.BackoffMin,
		BackoffMax:   cfg.BackoffMax,
		// The embedded Redis lives and dies with the process: it cannot
		// come back empty while the monitor watches it.
		NoRestartCheck: cfg.Mode == ModeEmbedded,
	}
}

func (o MonitorOptions) withDefaults() MonitorOptions {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.PingInterval, time.Second)
	def(&o.BackoffMin, 250*time.Millisecond)
	def(&o.BackoffMax, 2*time.Second)
	def(&o.ProbeTimeout, time.Second)
	def(&o.DownAfter, time.Second)
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = o.BackoffMin
	}
	if o.MarkerKey == "" {
		o.MarkerKey = DefaultMarkerKey
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}
