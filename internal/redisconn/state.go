package redisconn

import "fmt"

// State is the connection state published by the Monitor.
type State int32

// The states, in the order a connection usually goes through them.
const (
	// Connecting is the state from creation until the first probe answers.
	Connecting State = iota
	// Ready means the last probe succeeded.
	Ready
	// Reconnecting means a probe failed while ready; probes are retried with backoff.
	Reconnecting
	// Down means probes have failed for longer than MonitorOptions.DownAfter.
	Down
	// Closed is terminal: the monitor was closed.
	Closed
)

var stateNames = [...]string{"connecting", "ready", "reconnecting", "down", "closed"}

// String returns the lower-case name: "connecting", "ready", "reconnecting",
// "down" or "closed".
func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int32(s))
}

// MarshalText encodes the state as its name, for JSON health reports.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
