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

// Problems collects Problem values while loading or validating.
type Problems []Problem

func (ps *Problems) Add(key, msg string) {
	*ps = append(*ps, Problem{Key: key, Message: msg})
}

// Has reports whether key, or a key below it, already has a problem.
func (ps Problems) Has(key string) bool {
	for _, p := range ps {
		if p.Key == key || strings.HasPrefix(p.Key, key+".") {
			return true
		}
	}
	return false
}

// Err returns nil or an *Error holding the problems sorted by rank(key),
// then by key; a nil rank sorts by key alone.
func (ps Problems) Err(rank func(key string) int) error {
	if len(ps) == 0 {
		return nil
	}
	out := make([]Problem, len(ps))
	copy(out, ps)
	sort.SliceStable(out, func(i, j int) bool {
		if rank != nil {
			if ri, rj := rank(out[i].Key), rank(out[j].Key); ri != rj {
				return ri < rj
			}
		}
		return out[i].Key < out[j].Key
	})
	return &Error{Problems: out}
}
