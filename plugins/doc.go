// Package plugins is the contract between taskhost and its compiled-in task
// handlers: Plugin, Info, Register, Host and the optional lifecycle interfaces.
package plugins
