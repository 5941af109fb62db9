// Package tracetest is an OTLP receiver (HTTP, and gRPC) on loopback for tests: it
// decodes what exporters send with OpenTelemetry's protobuf package and
// keeps the spans, so a test can follow a trace across real processes.
package tracetest
