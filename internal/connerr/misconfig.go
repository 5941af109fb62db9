package connerr

import (
	"strings"

	"github.com/redis/go-redis/v9"
)

// Kinds of refusal that come from the configuration rather than from an
// outage, as Misconfigured names them.
const (
	ProblemAuth       = "authentication" // NOAUTH, WRONGPASS
	ProblemPermission = "permission"     // NOPERM
	ProblemDatabase   = "database"       // ERR DB index is out of range
)

// Misconfigured reports which setting a refusal from Redis points at:
// ProblemAuth for NOAUTH and WRONGPASS, ProblemPermission for NOPERM,
// ProblemDatabase for a database number the server does not have; "" for
// any other error. Retrying does not cure these; changing the config (or the
// server's ACL) does.
func Misconfigured(err error) string {
	switch {
	case err == nil:
		return ""
	case redis.IsAuthError(err):
		return ProblemAuth
	case redis.IsPermissionError(err):
		return ProblemPermission
	case strings.Contains(err.Error(), "DB index is out of range"):
		return ProblemDatabase
	}
	return ""
}

// Reportable reports whether err is worth showing as the connection's last
// error: Redis cannot serve (Down), or it refused what Misconfigured names.
func Reportable(err error) bool { return Down(err) || Misconfigured(err) != "" }

// MisconfiguredHint is the log message for a problem kind: what Redis
// refused and which keys to check.
func MisconfiguredHint(problem string) string {
	switch problem {
	case ProblemAuth:
		return "redis refused authentication (NOAUTH or WRONGPASS): check redis.username and redis.password " +
			"(REDIS_USERNAME, REDIS_PASSWORD) or the credentials in redis.url; this is not an outage"
	case ProblemPermission:
		return "redis refused a command for lack of permission (NOPERM): the Redis user's ACL must allow " +
			"the commands taskhost runs; this is not an outage"
	case ProblemDatabase:
		return "redis refused the database number (redis.db, or the /db of redis.url): the server has fewer databases; " +
			"this is not an outage"
	}
	return ""
}
