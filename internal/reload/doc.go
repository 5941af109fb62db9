// Package reload holds what a config reload needs besides the runtime's
// own appliers: the key-by-key difference of two configs, and the admin
// endpoint that `worker reload` calls.
package reload
