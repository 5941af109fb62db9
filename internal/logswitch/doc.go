// Package logswitch is a slog.Handler whose level and format (text or JSON)
// change while the program runs, so that a config reload can apply
// log.level and log.format to every logger already derived from it.
package logswitch
