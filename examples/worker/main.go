// Command worker is a custom worker binary: taskhost's worker command, with
// every flag and subcommand, and the plugins this team picked, its own included.
package main

import (
	taskhostcmd "github.com/taskhost/taskhost/cmd"
	_ "github.com/taskhost/taskhost/plugins/canary"
	_ "github.com/taskhost/taskhost/plugins/webhook"
)

func main() { taskhostcmd.Main() }
