// Package webhook is the built-in plugin "webhook": it delivers HTTP requests
// from webhook:deliver tasks, with retries, signing, per-host rates and SSRF guards.
//
// # Tasks
//
// A webhook:deliver task's payload is a Delivery as JSON:
//
//	{"url": "https://example.com/hook", "method": "POST",
//	 "headers": {"Content-Type": "application/json"}, "body": "{\"id\":1}"}
//
// method defaults to POST. url must be http or https. Build one with NewTask.
//
// # Outcomes
//
//   - 2xx: done.
//   - 5xx, 408, a timeout or a connection error: an error, so asynq retries
//     the task with its backoff.
//   - 429: a *ratelimit.LimitedError whose RetryIn is the response's
//     Retry-After (seconds or an HTTP date; 30s when absent; between 1s and
//     24h), so the task is retried then without counting as a failure.
//   - Any other status (4xx, or a 3xx that was not followed): archived at
//     once (asynq.SkipRetry), with the status in the reason.
//   - A refused destination (see below) or a payload that does not decode:
//     archived at once, with the reason.
//
// # Config (plugins.webhook)
//
//	timeout: 10s          # whole request, redirects included
//	rate: ""              # per destination host, ulule's format, e.g. "50-S"; empty: no limit
//	signing_secret: ""    # HMAC-SHA256 key; empty: requests are not signed
//	allow_hosts: []       # hostnames, IPs or CIDRs; see below
//
// With rate set, deliveries to one host (the URL's host name, without the
// port) are counted through Host.Limiter; a delivery over the rate returns
// a *ratelimit.LimitedError that retries it when the window resets.
//
// # Destinations and SSRF
//
// With allow_hosts empty, any public address may be reached, and loopback,
// private (RFC 1918, fc00::/7), link-local (including 169.254.169.254),
// unspecified, multicast, CGNAT (100.64.0.0/10) and other reserved addresses
// are refused. The check runs on the resolved IP at dial time, so a host name
// that resolves, or is re-bound, to such an address is refused too, and so is
// a redirect into one: every connection goes through the same dialer. HTTP
// proxies from the environment are not used.
//
// With allow_hosts set, it is the complete list of destinations, and nothing
// else is reached, public or private:
//   - a CIDR (10.0.0.0/8) or an IP admits connections to those addresses;
//   - a host name (hooks.internal) admits URLs with exactly that host, to
//     whatever address it resolves: list only names you control.
//
// # Signatures
//
// With signing_secret set, each attempt carries two headers:
//
//	X-Taskhost-Timestamp: <Unix seconds>
//	X-Taskhost-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>
//
// A receiver recomputes the HMAC over the timestamp header, a dot and the raw
// body, compares it in constant time and refuses old timestamps; Verify does
// all three. The secret is never logged or returned in an error.
//
// # Reload
//
// The plugin implements plugins.Reloader, and every key reloads (SIGHUP,
// `worker reload`). The new section is checked as at start (a bad one is
// refused, naming the key, and nothing changes), then applies from the next
// delivery; one under way finishes with the settings it started with.
//   - rate: the per-host counters carry on; the new rate applies in the
//     current window.
//   - signing_secret: the next attempt, a retry included, is signed with the
//     new secret. Have receivers accept both secrets before the reload.
//   - timeout and allow_hosts: a new HTTP client, with an empty connection
//     pool, so no connection opened under the old allow_hosts is reused. The
//     old client's idle connections are closed.
package webhook
