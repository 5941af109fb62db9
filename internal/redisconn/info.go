package redisconn

import "strings"

// ParseInfo parses the reply of INFO into key/value pairs. Section headers
// ("# Memory") and blank lines are skipped; a value is everything after the
// first ':', so values that contain ':' (executable paths, keyspace lines)
// are kept whole.
func ParseInfo(info string) map[string]string {
	out := make(map[string]string, 128)
	for line := range strings.Lines(info) {
		line = strings.TrimRight(line, "\r\n")
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		out[k] = v
	}
	return out
}

// infoField returns one field of an INFO reply without building a map.
func infoField(info, key string) string {
	for line := range strings.Lines(info) {
		if rest, ok := strings.CutPrefix(line, key); ok && strings.HasPrefix(rest, ":") {
			return strings.TrimRight(rest[1:], "\r\n")
		}
	}
	return ""
}
