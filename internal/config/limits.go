package config

import (
	"errors"
	"fmt"
	"io"
	"os"

	"go.yaml.in/yaml/v3"
)

// Limits of a config, checked before it is parsed or decoded: a bigger
// file, or more keys, is a config error rather than a long stall or an
// out-of-memory crash.
const (
	// MaxFileBytes bounds a config file (1 MiB); a device such as
	// /dev/zero is refused at that size.
	MaxFileBytes = 1 << 20
	// MaxKeys bounds the keys of all layers together, counting every map
	// entry and list item (plugin sections included), and the entries of
	// one map given as "name=value,..." in the environment.
	MaxKeys = 10000
)

// BoundedFile is koanf's file provider with a size limit: a file, or a
// device, longer than MaxFileBytes is an error before it is held in memory
// or parsed.
type BoundedFile string

// ReadBytes reads the file, at most MaxFileBytes of it.
func (p BoundedFile) ReadBytes() ([]byte, error) {
	f, err := os.Open(string(p))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFileBytes {
		return nil, fmt.Errorf("larger than %d bytes (1 MiB), the limit of a config file", MaxFileBytes)
	}
	return b, nil
}

// Read is not supported: the file needs a parser.
func (p BoundedFile) Read() (map[string]any, error) {
	return nil, errors.New("config: a file needs a parser")
}

// BoundedYAML is koanf's YAML parser with a key limit: the document is
// parsed into nodes (linear), counted, and decoded only when it holds at
// most MaxKeys keys, since yaml.v3 checks a mapping's keys for duplicates
// in quadratic time (a 100,000-key mapping took 25 s).
type BoundedYAML struct{}

// Unmarshal parses b into a map.
func (BoundedYAML) Unmarshal(b []byte) (map[string]any, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	if n := countNodes(&doc, MaxKeys+1); n > MaxKeys {
		return nil, fmt.Errorf("more than %d keys (each map entry and list item counts); expected at most %d", MaxKeys, MaxKeys)
	}
	out := map[string]any{}
	if len(doc.Content) == 0 {
		return out, nil
	}
	if err := doc.Decode(&out); err != nil {
		return nil, err
	}
	return out, nil
}

// Marshal is not used.
func (BoundedYAML) Marshal(map[string]any) ([]byte, error) {
	return nil, errors.New("config: not supported")
}

// countNodes counts the mapping entries and sequence items below n,
// following aliases, stopping once it reaches limit.
func countNodes(n *yaml.Node, limit int) int {
	count := 0
	var walk func(n *yaml.Node, depth int)
	walk = func(n *yaml.Node, depth int) {
		if n == nil || count >= limit || depth > 100 {
			return
		}
		switch n.Kind {
		case yaml.MappingNode:
			count += len(n.Content) / 2
		case yaml.SequenceNode:
			count += len(n.Content)
		case yaml.AliasNode:
			walk(n.Alias, depth+1)
			return
		}
		for _, c := range n.Content {
			walk(c, depth+1)
		}
	}
	walk(n, 0)
	return count
}

// CountKeys counts the map entries and list items of v, at any depth,
// stopping once it reaches limit.
func CountKeys(v any, limit int) int {
	n := 0
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for _, e := range x {
				if n++; n >= limit {
					return
				}
				walk(e)
			}
		case []any:
			for _, e := range x {
				if n++; n >= limit {
					return
				}
				walk(e)
			}
		}
	}
	walk(v)
	return n
}
