// Package config holds the configuration rules shared by taskhost and its
// plugins: strict decoding that names every bad key, config errors, and redaction.
//
// The config types, their defaults, layered loading and validation live in
// the root package (taskhost.Config); plugins decode their own sections with
// DecodeSection through plugins.Host, under the same rules.
package config
