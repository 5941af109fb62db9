// Command producer is a test program: an application that embeds taskhost
// and enqueues one task, through taskhost's client (-mode client) or a
// plain asynq.Client with taskhost.InjectTrace (-mode plain), inside a span
// of its own. It prints what it did as one JSON line and runs until SIGTERM,
// so that its outbox can drain and its spans be exported.
package main
