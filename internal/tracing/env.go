package tracing

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
)

// The environment variables taskhost reads or checks, from the OpenTelemetry
// specification (sdk-environment-variables, exporter OTLP).
const (
	EnvSDKDisabled    = "OTEL_SDK_DISABLED"
	EnvTracesExporter = "OTEL_TRACES_EXPORTER"
	EnvEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	EnvProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"
	EnvTracesProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	EnvServiceName    = "OTEL_SERVICE_NAME"
	EnvResourceAttrs  = "OTEL_RESOURCE_ATTRIBUTES"
	EnvSampler        = "OTEL_TRACES_SAMPLER"
	EnvSamplerArg     = "OTEL_TRACES_SAMPLER_ARG"
)

// The OTLP protocols taskhost speaks (OTEL_EXPORTER_OTLP_PROTOCOL);
// http/protobuf is the default, as the specification says. http/json is
// not built in.
const (
	ProtocolHTTP = "http/protobuf"
	ProtocolGRPC = "grpc"
)

// Where spans go when tracing.enabled is true and no endpoint is set: the
// specification's defaults, per protocol.
const (
	DefaultEndpoint     = "http://localhost:4318"
	DefaultGRPCEndpoint = "http://localhost:4317"
)

// Settings is what Resolve decided.
type Settings struct {
	// Enabled says whether to trace.
	Enabled bool
	// Why says what turned tracing on or kept it off, for the start log line.
	Why string
	// Protocol is http/protobuf or grpc.
	Protocol string
	// Endpoint is where spans go, without user info, query or fragment
	// (they may hold credentials); empty when off.
	Endpoint string
	// RedisCommands adds a span per Redis command (tracing.redis_commands).
	RedisCommands bool
	// defaultEndpoint: no endpoint variable is set, so Start gives the
	// exporter the specification's default, http://localhost:4318 or
	// :4317 (the Go exporters' own default is TLS).
	defaultEndpoint bool
}

// Problem is one bad environment variable. Message never holds the value of
// a variable that may carry a secret (headers, endpoints with credentials).
type Problem struct {
	Var     string
	Message string
}

// EnvError lists every bad variable at once.
type EnvError struct{ Problems []Problem }

func (e *EnvError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Var + ": " + p.Message
	}
	return strings.Join(parts, "; ")
}

// Resolve decides whether to trace, from environ ("NAME=value", as
// os.Environ gives it) and the tracing: section (enabled, redisCommands),
// and checks every OTEL_* variable that the SDK would read, so that a bad
// value is an error naming the variable rather than a silent default.
//
// Tracing is on when OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, or enabled is true; it stays
// off when OTEL_SDK_DISABLED is true or OTEL_TRACES_EXPORTER is none.
func Resolve(environ []string, enabled, redisCommands bool) (Settings, error) {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "OTEL_") {
			env[k] = v
		}
	}
	var ps []Problem
	bad := func(name, msg string) { ps = append(ps, Problem{Var: name, Message: msg}) }

	disabled := false
	if v, ok := env[EnvSDKDisabled]; ok && v != "" {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true":
			disabled = true
		case "false":
		default:
			bad(EnvSDKDisabled, fmt.Sprintf("%q is not a boolean (true or false)", v))
		}
	}
	exporterNone := false
	if v := strings.TrimSpace(env[EnvTracesExporter]); v != "" {
		for _, e := range strings.Split(v, ",") {
			switch strings.ToLower(strings.TrimSpace(e)) {
			case "otlp":
			case "none":
				exporterNone = true
			default:
				bad(EnvTracesExporter, fmt.Sprintf("exporter %q is not built in (expected otlp or none)", strings.TrimSpace(e)))
			}
		}
	}
	protocol := ProtocolHTTP
	for _, name := range []string{EnvProtocol, EnvTracesProtocol} { // the second wins
		switch v := strings.TrimSpace(env[name]); v {
		case "":
		case ProtocolHTTP, ProtocolGRPC:
			protocol = v
		default:
			bad(name, fmt.Sprintf("%q is not an OTLP protocol taskhost speaks (expected http/protobuf or grpc)", v))
		}
	}
	endpoint := ""
	for _, name := range []string{EnvEndpoint, EnvTracesEndpoint} {
		v := strings.TrimSpace(env[name])
		if v == "" {
			continue
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(name, "is not an http:// or https:// URL with a host, such as http://collector:4318")
			continue
		}
		if name == EnvTracesEndpoint || endpoint == "" {
			shown := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
			if name == EnvEndpoint && protocol == ProtocolHTTP {
				shown.Path = strings.TrimSuffix(shown.Path, "/") + "/v1/traces"
			}
			endpoint = shown.String()
		}
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
		"OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_EXPORT_TIMEOUT", "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"} {
		if v, ok := env[name]; ok {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err != nil || n < 0 {
				bad(name, fmt.Sprintf("%q is not an integer >= 0", v))
			}
		}
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"} {
		if v, ok := env[name]; ok {
			switch strings.TrimSpace(v) {
			case "", "gzip", "none":
			default:
				bad(name, fmt.Sprintf("%q is not a compression (expected gzip or none)", v))
			}
		}
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_INSECURE", "OTEL_EXPORTER_OTLP_TRACES_INSECURE"} {
		if v, ok := env[name]; ok {
			if _, err := strconv.ParseBool(strings.TrimSpace(v)); err != nil {
				bad(name, fmt.Sprintf("%q is not a boolean (true or false)", v))
			}
		}
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"} {
		if v, ok := env[name]; ok {
			if msg := checkPairs(v); msg != "" {
				bad(name, msg+" (expected key=value,key=value; values are not shown)")
			}
		}
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_CERTIFICATE", "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
		"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
		"OTEL_EXPORTER_OTLP_CLIENT_KEY", "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY"} {
		if v, ok := env[name]; ok && v != "" {
			if _, err := os.Stat(v); err != nil {
				bad(name, fmt.Sprintf("cannot read %q: %v", v, errors.Unwrap(err)))
			}
		}
	}
	if v, ok := env[EnvResourceAttrs]; ok {
		if msg := checkPairs(v); msg != "" {
			bad(EnvResourceAttrs, msg+" (expected key=value,key=value with values percent-encoded)")
		}
	}
	if v, ok := env[EnvServiceName]; ok && strings.TrimSpace(v) == "" {
		bad(EnvServiceName, "is set but empty")
	}
	checkSampler(env, bad)

	if len(ps) > 0 {
		return Settings{}, &EnvError{Problems: ps}
	}
	s := Settings{RedisCommands: redisCommands, Protocol: protocol}
	switch {
	case disabled:
		s.Why = EnvSDKDisabled + " is true"
	case exporterNone:
		s.Why = EnvTracesExporter + " is none"
	case endpoint != "":
		s.Enabled, s.Endpoint, s.Why = true, endpoint, "an OTLP endpoint is set"
	case enabled:
		s.Enabled, s.Endpoint, s.Why = true, DefaultEndpoint+"/v1/traces", "tracing.enabled is true"
		if protocol == ProtocolGRPC {
			s.Endpoint = DefaultGRPCEndpoint
		}
		s.defaultEndpoint = true
	default:
		s.Why = "no OTLP endpoint is set and tracing.enabled is false"
	}
	if !s.Enabled {
		s.RedisCommands = false
	}
	return s, nil
}

// samplers are the values of OTEL_TRACES_SAMPLER that the Go SDK knows;
// those ending in traceidratio take a ratio in OTEL_TRACES_SAMPLER_ARG.
var samplers = []string{"always_on", "always_off", "traceidratio",
	"parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"}

func checkSampler(env map[string]string, bad func(name, msg string)) {
	s := strings.ToLower(strings.TrimSpace(env[EnvSampler]))
	if s != "" && !slices.Contains(samplers, s) {
		bad(EnvSampler, fmt.Sprintf("%q is not a sampler the Go SDK knows (expected one of %s)", env[EnvSampler], strings.Join(samplers, ", ")))
		return
	}
	arg, ok := env[EnvSamplerArg]
	if !ok || strings.TrimSpace(arg) == "" || !strings.HasSuffix(s, "traceidratio") {
		return
	}
	if r, err := strconv.ParseFloat(strings.TrimSpace(arg), 64); err != nil || r < 0 || r > 1 {
		bad(EnvSamplerArg, fmt.Sprintf("%q is not a ratio between 0 and 1", arg))
	}
}

// checkPairs checks a key=value,key=value list and returns what is wrong, or
// "". It never quotes a value.
func checkPairs(v string) string {
	if strings.TrimSpace(v) == "" {
		return ""
	}
	for i, item := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(item, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return fmt.Sprintf("item %d has no key=value form", i+1)
		}
		if _, err := url.PathUnescape(strings.TrimSpace(val)); err != nil {
			return fmt.Sprintf("the value of %q is not percent-encoded correctly", strings.TrimSpace(k))
		}
	}
	return ""
}
