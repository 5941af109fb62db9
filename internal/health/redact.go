package health

import "github.com/taskhost/taskhost/internal/config"

// Redact masks the secrets in s (config.RedactText): every report line and
// error message goes through it.
func Redact(s string) string { return config.RedactText(s) }
