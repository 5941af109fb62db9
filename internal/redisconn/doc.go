// Package redisconn builds the process's one Redis client with every timeout bounded,
// watches it with a state monitor (ready, reconnecting, down), and reads server diagnostics.
package redisconn
