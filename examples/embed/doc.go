// Command embed is the smallest program that embeds taskhost (the README's):
// one Redis URL, and the runtime serves the queue, cache and limiter until interrupted.
package main
