// Package examples holds programs that use taskhost as another module would,
// and the test that builds each in a module of its own and runs it against redis-server.
//
//   - embed: the smallest program that embeds the runtime (the README's);
//   - httpservice: an HTTP service that embeds the runtime and uses the
//     shared cache, the rate-limit middleware and the outbox client, and
//     runs its own plugin's handlers in the same process;
//   - worker: a custom worker binary, taskhost's worker command with the
//     plugins a team picked, its own included.
package examples
