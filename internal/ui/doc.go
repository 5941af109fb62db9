// Package ui serves the asynqmon dashboard at /ui on the runtime's shared Redis client,
// read-only by default, and behind basic or bearer authentication on listeners that are not loopback.
package ui
