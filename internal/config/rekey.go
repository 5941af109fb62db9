package config

import "errors"

// Rekey returns the problems of err as they read under key: when err holds
// an *Error, each of its problems moved to key (its message kept, its own
// key dropped), so that a plugin naming the key a problem came from does not
// repeat the prefix ("plugins.canary.every: invalid configuration:
// plugins.canary: ..."); otherwise one problem at key with err's message.
func Rekey(key string, err error) Problems {
	var ce *Error
	if errors.As(err, &ce) && len(ce.Problems) > 0 {
		out := make(Problems, len(ce.Problems))
		for i, p := range ce.Problems {
			out[i] = Problem{Key: key, Message: p.Message}
		}
		return out
	}
	return Problems{{Key: key, Message: err.Error()}}
}

// Collect adds to ps the problems that err holds: those of each *Error in
// its tree, and those that rekey extracts from the other config errors it
// recognises (a plugin's *ConfigError). A config error that neither knows
// (it only matches ErrInvalid) becomes a problem at fallbackKey. What is left
// are the errors that are not about configuration.
func Collect(ps *Problems, err error, fallbackKey string, rekey func(error) (Problems, bool)) (rest []error) {
	if err == nil {
		return nil
	}
	if got, ok := rekey(err); ok {
		*ps = append(*ps, got...)
		return nil
	}
	if ce, ok := err.(*Error); ok {
		*ps = append(*ps, ce.Problems...)
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			rest = append(rest, Collect(ps, e, fallbackKey, rekey)...)
		}
		return rest
	}
	if !errors.Is(err, ErrInvalid) {
		return []error{err}
	}
	if inner := errors.Unwrap(err); inner != nil && errors.Is(inner, ErrInvalid) {
		return Collect(ps, inner, fallbackKey, rekey)
	}
	ps.Add(fallbackKey, err.Error())
	return nil
}
