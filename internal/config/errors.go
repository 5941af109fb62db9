package config

import (
	"errors"
	"sort"
	"strconv"
	"strings"
)

// ErrInvalid is matched, with errors.Is, by every error that Load, Validate
// and DecodeSection return: a bad file, a bad key or value, a failed rule.
// The CLI maps it to exit code 2.
var ErrInvalid = errors.New("invalid configuration")

// Problem is one thing wrong with a configuration.
type Problem struct {
	// Key is the full koanf path, e.g. "redis.port" or
	// "ratelimit.tasks.email:send"; empty for a problem with the file itself.
	Key string
	// Message says what is wrong and what form is expected. It never holds a
	// secret value.
	Message string
}

func (p Problem) String() string {
	if p.Key == "" {
		return p.Message
	}
	return p.Key + ": " + p.Message
}

// Error lists every problem found, in the order of the keys in Config.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	switch len(e.Problems) {
	case 0:
		return ErrInvalid.Error()
	case 1:
		return ErrInvalid.Error() + ": " + e.Problems[0].String()
	}
	var b strings.Builder
	b.WriteString(ErrInvalid.Error())
	b.WriteString(" (")
	b.WriteString(strconv.Itoa(len(e.Problems)))
	b.WriteString(" problems):")
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Is reports whether target is ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// problems collects Problems while loading or validating.
type problems []Problem

func (ps *problems) add(key, msg string) {
	*ps = append(*ps, Problem{Key: key, Message: msg})
}

// has reports whether key, or a key below it, already has a problem.
func (ps problems) has(key string) bool {
	for _, p := range ps {
		if p.Key == key || strings.HasPrefix(p.Key, key+".") {
			return true
		}
	}
	return false
}

// err returns nil or an *Error holding the problems sorted by key order.
func (ps problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	out := make([]Problem, len(ps))
	copy(out, ps)
	sort.SliceStable(out, func(i, j int) bool {
		ri, rj := keyRank(out[i].Key), keyRank(out[j].Key)
		if ri != rj {
			return ri < rj
		}
		return out[i].Key < out[j].Key
	})
	return &Error{Problems: out}
}

// keyRank orders keys as the fields of Config are ordered. A key below a
// map-typed leaf (worker.queues.low) ranks with that leaf; a section or an
// unknown key ranks with the first leaf of its nearest known section.
func keyRank(key string) int {
	if key == "" {
		return -1
	}
	leaves := configSchema.leaves
	best, bestLen := 0, -1
	for i, l := range leaves {
		if (key == l.path || strings.HasPrefix(key, l.path+".")) && len(l.path) > bestLen {
			best, bestLen = i, len(l.path)
		}
	}
	if bestLen >= 0 {
		return best
	}
	for k := key; ; {
		for i, l := range leaves {
			if strings.HasPrefix(l.path, k+".") {
				return i
			}
		}
		j := strings.LastIndex(k, ".")
		if j < 0 {
			return len(leaves)
		}
		k = k[:j]
	}
}
