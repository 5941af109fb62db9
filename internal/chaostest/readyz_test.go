package chaostest

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// sample is one /readyz answer: its status code, 0 when the request failed.
type sample struct {
	at   time.Time
	code int
}

// readyzPoller polls a worker's /readyz every interval until stopped.
type readyzPoller struct {
	url    string
	client *http.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	samples []sample
}

func startReadyzPoller(addr string, every time.Duration) *readyzPoller {
	ctx, cancel := context.WithCancel(context.Background())
	p := &readyzPoller{
		url:    "http://" + addr + "/readyz",
		client: &http.Client{Timeout: time.Second, Transport: &http.Transport{}},
		cancel: cancel,
		done:   make(chan struct{}),
	}
	go func() {
		defer close(p.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			p.poll(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return p
}

func (p *readyzPoller) poll(ctx context.Context) {
	code := 0
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if resp, err := p.client.Do(req); err == nil {
		code = resp.StatusCode
		resp.Body.Close()
	} else if ctx.Err() != nil {
		return
	}
	p.mu.Lock()
	p.samples = append(p.samples, sample{at: time.Now(), code: code})
	p.mu.Unlock()
}

func (p *readyzPoller) stop() {
	p.cancel()
	<-p.done
	p.client.CloseIdleConnections()
}

// reflected reports whether /readyz answered 503 at least once between the
// start of an outage and until (its end plus a grace, bounded by the next
// outage), and when it first answered 200 after the outage's end.
func (p *readyzPoller) reflected(f fault, until time.Time) (seen503 bool, readyAgain time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.samples {
		if s.code == http.StatusServiceUnavailable && !s.at.Before(f.at) && !s.at.After(until) {
			seen503 = true
		}
		if s.code == http.StatusOK && s.at.After(f.end) && readyAgain.IsZero() {
			readyAgain = s.at
		}
	}
	return seen503, readyAgain
}
