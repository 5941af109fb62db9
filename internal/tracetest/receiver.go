package tracetest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Span is one received span, flattened for assertions. IDs are lower-case
// hex; ParentSpanID is "" for a root span.
type Span struct {
	TraceID      string
	SpanID       string
	ParentSpanID string
	Name         string
	Kind         string // SPAN_KIND_PRODUCER, SPAN_KIND_CONSUMER, ...
	Service      string // the resource's service.name
	Attrs        map[string]any
	Links        []Link
	StatusCode   string // STATUS_CODE_UNSET, STATUS_CODE_OK or STATUS_CODE_ERROR
	StatusMsg    string
	Start, End   time.Time
}

// Link is a span link.
type Link struct{ TraceID, SpanID string }

// Attr returns attribute key as a string ("" when absent).
func (s Span) Attr(key string) string {
	if v, ok := s.Attrs[key]; ok {
		return fmt.Sprint(v)
	}
	return ""
}

func (s Span) String() string {
	return fmt.Sprintf("%s %s [%s] trace=%s span=%s parent=%s attrs=%v links=%v",
		s.Service, s.Name, s.Kind, s.TraceID, s.SpanID, s.ParentSpanID, s.Attrs, s.Links)
}

// Receiver is an OTLP/HTTP trace receiver on 127.0.0.1.
type Receiver struct {
	srv   *http.Server
	ln    net.Listener
	conns atomic.Int64

	mu    sync.Mutex
	spans []Span
	posts int
	bad   []string
}

// Start starts a receiver and stops it in t.Cleanup.
func Start(t testing.TB) *Receiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Receiver{ln: ln}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 5 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				r.conns.Add(1)
			}
		}}
	go func() { _ = r.srv.Serve(ln) }()
	t.Cleanup(func() { _ = r.srv.Close() })
	return r
}

// URL is the receiver's base URL, for OTEL_EXPORTER_OTLP_ENDPOINT.
func (r *Receiver) URL() string { return "http://" + r.ln.Addr().String() }

// Connections counts the connections made to the receiver.
func (r *Receiver) Connections() int64 { return r.conns.Load() }

// BadRequests counts the requests the receiver refused.
func (r *Receiver) BadRequests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bad)
}

// Spans returns the spans received so far, by start time.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]Span(nil), r.spans...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// Wait waits up to d for a span that match accepts and returns it; it fails
// the test, listing what was received, when none comes.
func (r *Receiver) Wait(t testing.TB, d time.Duration, what string, match func(Span) bool) Span {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		for _, s := range r.Spans() {
			if match(s) {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no span %s within %s; received:\n%s", what, d, r.dump())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Tree renders the spans of trace traceID as an indented tree, children
// under their parents, in start order: service, name, kind, duration and
// attributes. docs/observability.md shows one.
func (r *Receiver) Tree(traceID string) string {
	var spans []Span
	for _, s := range r.Spans() {
		if s.TraceID == traceID {
			spans = append(spans, s)
		}
	}
	known := map[string]bool{}
	for _, s := range spans {
		known[s.SpanID] = true
	}
	var b strings.Builder
	fmt.Fprintf(&b, "trace %s\n", traceID)
	var walk func(parent string, depth int)
	walk = func(parent string, depth int) {
		for _, s := range spans {
			if s.ParentSpanID != parent && !(parent == "" && !known[s.ParentSpanID]) {
				continue
			}
			keys := make([]string, 0, len(s.Attrs))
			for k := range s.Attrs {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			fmt.Fprintf(&b, "%s%s  %q  %s  span=%s  %s\n", strings.Repeat("  ", depth+1), s.Service, s.Name,
				strings.TrimPrefix(s.Kind, "SPAN_KIND_"), s.SpanID, s.End.Sub(s.Start).Round(time.Microsecond))
			for _, k := range keys {
				fmt.Fprintf(&b, "%s    %s=%v\n", strings.Repeat("  ", depth+1), k, s.Attrs[k])
			}
			for _, l := range s.Links {
				fmt.Fprintf(&b, "%s    link trace=%s span=%s\n", strings.Repeat("  ", depth+1), l.TraceID, l.SpanID)
			}
			walk(s.SpanID, depth+1)
		}
	}
	walk("", 0)
	return b.String()
}

func (r *Receiver) dump() string {
	var b strings.Builder
	for _, s := range r.Spans() {
		b.WriteString("  " + s.String() + "\n")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.bad {
		b.WriteString("  bad request: " + e + "\n")
	}
	return b.String()
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	fail := func(code int, msg string) {
		r.mu.Lock()
		r.bad = append(r.bad, msg)
		r.mu.Unlock()
		http.Error(w, msg, code)
	}
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
		fail(http.StatusNotFound, req.Method+" "+req.URL.Path)
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		fail(http.StatusUnsupportedMediaType, "content type "+ct)
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			fail(http.StatusBadRequest, err.Error())
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(io.LimitReader(body, 32<<20))
	if err != nil {
		fail(http.StatusBadRequest, err.Error())
		return
	}
	var msg coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &msg); err != nil {
		fail(http.StatusBadRequest, "decode: "+err.Error())
		return
	}
	got := spansOf(&msg)
	r.mu.Lock()
	r.spans = append(r.spans, got...)
	r.posts++
	r.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = io.Copy(w, bytes.NewReader(out))
}

// spansOf flattens the spans of an export request.
func spansOf(msg *coltracepb.ExportTraceServiceRequest) []Span {
	var got []Span
	for _, rs := range msg.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				got = append(got, flatten(service, sp))
			}
		}
	}
	return got
}

func flatten(service string, sp *tracepb.Span) Span {
	s := Span{
		TraceID:    hex.EncodeToString(sp.GetTraceId()),
		SpanID:     hex.EncodeToString(sp.GetSpanId()),
		Name:       sp.GetName(),
		Kind:       sp.GetKind().String(),
		Service:    service,
		Attrs:      map[string]any{},
		StatusCode: sp.GetStatus().GetCode().String(),
		StatusMsg:  sp.GetStatus().GetMessage(),
		Start:      time.Unix(0, int64(sp.GetStartTimeUnixNano())),
		End:        time.Unix(0, int64(sp.GetEndTimeUnixNano())),
	}
	if p := sp.GetParentSpanId(); len(p) > 0 {
		s.ParentSpanID = hex.EncodeToString(p)
	}
	for _, kv := range sp.GetAttributes() {
		s.Attrs[kv.GetKey()] = value(kv.GetValue())
	}
	for _, l := range sp.GetLinks() {
		s.Links = append(s.Links, Link{TraceID: hex.EncodeToString(l.GetTraceId()), SpanID: hex.EncodeToString(l.GetSpanId())})
	}
	return s
}

func value(v *commonpb.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	}
	return v.String()
}

// GRPCReceiver is an OTLP/gRPC trace receiver on 127.0.0.1.
type GRPCReceiver struct {
	coltracepb.UnimplementedTraceServiceServer
	srv *grpc.Server
	ln  net.Listener

	mu    sync.Mutex
	spans []Span
}

// StartGRPC starts a gRPC receiver and stops it in t.Cleanup.
func StartGRPC(t testing.TB) *GRPCReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &GRPCReceiver{ln: ln, srv: grpc.NewServer()}
	coltracepb.RegisterTraceServiceServer(r.srv, r)
	go func() { _ = r.srv.Serve(ln) }()
	t.Cleanup(r.srv.Stop)
	return r
}

// URL is the receiver's endpoint, for OTEL_EXPORTER_OTLP_ENDPOINT (http:
// a plaintext connection).
func (r *GRPCReceiver) URL() string { return "http://" + r.ln.Addr().String() }

// Export is the OTLP trace service's one method.
func (r *GRPCReceiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	got := spansOf(req)
	r.mu.Lock()
	r.spans = append(r.spans, got...)
	r.mu.Unlock()
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// Spans returns the spans received so far.
func (r *GRPCReceiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}
