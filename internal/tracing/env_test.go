package tracing_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/tracing"
)

func TestResolveDecides(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		env      []string
		enabled  bool
		on       bool
		endpoint string
	}{
		{"default is off", nil, false, false, ""},
		{"generic endpoint", []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318"}, false, true, "http://collector:4318/v1/traces"},
		{"generic endpoint with a path", []string{"OTEL_EXPORTER_OTLP_ENDPOINT=https://c.example/otlp/"}, false, true, "https://c.example/otlp/v1/traces"},
		{"traces endpoint is used as is", []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://c:4318/custom"}, false, true, "http://c:4318/custom"},
		{"traces endpoint wins", []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://a:1/t", "OTEL_EXPORTER_OTLP_ENDPOINT=http://b:2"}, false, true, "http://a:1/t"},
		{"credentials are not shown", []string{"OTEL_EXPORTER_OTLP_ENDPOINT=https://user:pw@c:4318?key=k"}, false, true, "https://c:4318/v1/traces"},
		{"tracing.enabled alone", nil, true, true, "http://localhost:4318/v1/traces"},
		{"tracing.enabled over gRPC", []string{"OTEL_EXPORTER_OTLP_PROTOCOL=grpc"}, true, true, "http://localhost:4317"},
		{"gRPC endpoint has no path", []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4317"}, false, true, "http://c:4317"},
		{"SDK disabled wins", []string{"OTEL_SDK_DISABLED=TRUE", "OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4318"}, true, false, ""},
		{"exporter none wins", []string{"OTEL_TRACES_EXPORTER=none", "OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4318"}, true, false, ""},
		{"SDK disabled false", []string{"OTEL_SDK_DISABLED=false"}, true, true, "http://localhost:4318/v1/traces"},
		{"other variables are fine", []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4318", "OTEL_TRACES_SAMPLER=parentbased_traceidratio",
			"OTEL_TRACES_SAMPLER_ARG=0.25", "OTEL_SERVICE_NAME=w", "OTEL_RESOURCE_ATTRIBUTES=deployment.environment=prod,team=a%20b",
			"OTEL_EXPORTER_OTLP_HEADERS=api-key=x", "OTEL_BSP_SCHEDULE_DELAY=500", "OTEL_EXPORTER_OTLP_COMPRESSION=gzip",
			"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf", "PATH=/bin"}, false, true, "http://c:4318/v1/traces"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := tracing.Resolve(tc.env, tc.enabled, true)
			require.NoError(t, err)
			require.Equal(t, tc.on, s.Enabled, s.Why)
			require.Equal(t, tc.endpoint, s.Endpoint)
			require.Equal(t, tc.on, s.RedisCommands, "redis command spans only with tracing on")
			require.NotEmpty(t, s.Why)
		})
	}
}

func TestResolveNamesEveryBadVariable(t *testing.T) {
	t.Parallel()
	_, err := tracing.Resolve([]string{
		"OTEL_SDK_DISABLED=yes",
		"OTEL_TRACES_EXPORTER=zipkin",
		"OTEL_EXPORTER_OTLP_PROTOCOL=thrift",
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/json",
		"OTEL_EXPORTER_OTLP_ENDPOINT=otel.internal:4318",
		"OTEL_EXPORTER_OTLP_TIMEOUT=10s",
		"OTEL_BSP_MAX_QUEUE_SIZE=-1",
		"OTEL_EXPORTER_OTLP_COMPRESSION=zstd",
		"OTEL_EXPORTER_OTLP_INSECURE=sure",
		"OTEL_EXPORTER_OTLP_HEADERS=authorization",
		"OTEL_EXPORTER_OTLP_CERTIFICATE=/nonexistent/ca.pem",
		"OTEL_RESOURCE_ATTRIBUTES==x",
		"OTEL_SERVICE_NAME= ",
		"OTEL_TRACES_SAMPLER=parentbased_traceidratio",
		"OTEL_TRACES_SAMPLER_ARG=1.5",
	}, false, false)
	var ee *tracing.EnvError
	require.True(t, errors.As(err, &ee), "%v", err)
	var vars []string
	for _, p := range ee.Problems {
		vars = append(vars, p.Var)
	}
	require.Equal(t, []string{
		"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
		"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_BSP_MAX_QUEUE_SIZE",
		"OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_INSECURE", "OTEL_EXPORTER_OTLP_HEADERS",
		"OTEL_EXPORTER_OTLP_CERTIFICATE", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_SERVICE_NAME", "OTEL_TRACES_SAMPLER_ARG",
	}, vars)
	require.Contains(t, err.Error(), "expected http/protobuf or grpc")
	require.NotContains(t, err.Error(), "authorization", "a header is never shown")
	require.NotContains(t, err.Error(), "otel.internal", "an endpoint may hold credentials: not shown")
}
