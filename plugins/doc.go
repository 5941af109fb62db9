// Package plugins is the contract between taskhost and its compiled-in task
// handlers: Plugin, Info, Register, Host, the optional lifecycle interfaces and typed handlers.
package plugins
