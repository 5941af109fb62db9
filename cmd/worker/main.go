// Command worker runs a taskhost worker with the built-in plugins.
package main

import (
	taskhostcmd "github.com/taskhost/taskhost/cmd"
	_ "github.com/taskhost/taskhost/plugins/all"
)

func main() { taskhostcmd.Main() }
