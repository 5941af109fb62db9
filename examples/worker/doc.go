// Command worker is a custom worker binary: taskhost's worker command, with
// every flag and subcommand, and the plugins this team picked, its own included.
package main
