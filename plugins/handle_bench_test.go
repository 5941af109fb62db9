package plugins_test

import (
	"encoding/json"
	"testing"

	"github.com/taskhost/taskhost/plugins"
)

var benchPayload = []byte(`{"name":"ada lovelace","times":3}`)

// BenchmarkDecodePayload is Handle's strict decode (unknown fields refused,
// trailing data checked, Validate called) ...
func BenchmarkDecodePayload(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := plugins.DecodePayload[greet](benchPayload); err != nil {
			b.Fatal(err)
		}
	}
}

// ... against the baseline a hand-written handler would use.
func BenchmarkDecodePayloadBaselineUnmarshal(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		var g greet
		if err := json.Unmarshal(benchPayload, &g); err != nil {
			b.Fatal(err)
		}
	}
}
