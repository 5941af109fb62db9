// Package tasklog carries a task's log context through its handler: the task
// type, and the attributes a handler adds to the line the worker logs when
// the task ends (plugins.AnnotateTask).
//
// The runtime's task middleware and plugins/pluginstest create the Note; the
// plugin host and plugins read and add to it.
package tasklog
