package all

import (
	_ "github.com/taskhost/taskhost/plugins/canary"  // plugins.canary
	_ "github.com/taskhost/taskhost/plugins/webhook" // plugins.webhook
)
