// Package all compiles in taskhost's built-in plugins, webhook and canary:
// import it for its side effects in a worker's main package.
package all
