package main

import (
	taskhostcmd "github.com/taskhost/taskhost/cmd"
	_ "github.com/taskhost/taskhost/plugins/canary"
	_ "github.com/taskhost/taskhost/plugins/webhook"
)

func main() { taskhostcmd.Main() }
