package config_test

import (
	"fmt"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/config"
)

func TestRedactText(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"redis://:hunter2@10.0.0.5:6379/0", "redis://:***@10.0.0.5:6379/0"},
		{"rediss://app:hunter2@redis.internal:6380/1?dial_timeout=1s", "rediss://app:***@redis.internal:6380/1?dial_timeout=1s"},
		{"dial redis://app:hunter2@h:6379 failed: refused", "dial redis://app:***@h:6379 failed: refused"},
		{`cfg "redis://u:p@ss/w@rd@h:1/0" bad`, `cfg "redis://u:***@h:1/0" bad`},
		{"two redis://a:one@h1 and redis://b:two@h2", "two redis://a:***@h1 and redis://b:***@h2"},
		{"redis://app@h:6379/0", "redis://app@h:6379/0"},
		{"redis://h:6379/0", "redis://h:6379/0"},
		{"redis://h:6379/0?password=hunter2&db=1", "redis://h:6379/0?password=***&db=1"},
		{"redis://h/0?sentinel_password=hunter2", "redis://h/0?sentinel_password=***"},
		{"signing_secret=hunter2 other=1", "signing_secret=*** other=1"},
		{"PASSWORD=hunter2", "PASSWORD=***"},
		{"api_key=hunter2 passwd=hunter2", "api_key=*** passwd=***"},
		{"dial tcp 127.0.0.1:6379: connect: connection refused", "dial tcp 127.0.0.1:6379: connect: connection refused"},
		{"", ""},
	}
	for _, c := range cases {
		got := config.RedactText(c.in)
		require.Equal(t, c.want, got, "RedactText(%q)", c.in)
		require.NotContains(t, got, "hunter2")
	}
}

func FuzzRedactHidesPassword(f *testing.F) {
	f.Add("app", "hunter2", "h:6379/0")
	f.Fuzz(func(t *testing.T, user, pass, host string) {
		if len(pass) < 4 || strings.ContainsAny(user+pass+host, "\"'<>@:=") || strings.IndexFunc(user+pass+host, unicode.IsSpace) >= 0 || strings.ContainsAny(host, "/?#") {
			t.Skip()
		}
		in := "connect redis://" + user + ":" + pass + "@" + host + " failed"
		got := config.RedactText(in)
		if strings.Contains(got, ":"+pass+"@") {
			t.Fatalf("RedactText(%q) = %q keeps the password", in, got)
		}
	})
}

func ExampleRedactText() {
	fmt.Println(config.RedactText("dial redis://app:s3cret@10.0.0.5:6379/0: connection refused"))
	// Output: dial redis://app:***@10.0.0.5:6379/0: connection refused
}
