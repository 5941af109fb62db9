package redisconn

// LastRunID exposes the run_id seen by the last successful restart check.
func (m *Monitor) LastRunID() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.restart.runID
}
