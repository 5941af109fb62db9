// Command chaosworker is the real worker command (taskhostcmd.Main with the built-in plugins) plus a
// "chaos" test plugin that records each execution in a second Redis; internal/chaostest builds and runs it.
package main
