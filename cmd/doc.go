// Package taskhostcmd is the worker command: flags, config loading, signals
// and exit codes. A custom worker binary's main.go calls Main.
package taskhostcmd
