// Package config defines taskhost's configuration and loads it in layers:
// defaults, then the YAML file, then the environment, then flags.
package config
