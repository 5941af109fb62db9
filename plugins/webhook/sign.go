package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// The headers of a signed delivery.
const (
	HeaderTimestamp = "X-Taskhost-Timestamp"
	HeaderSignature = "X-Taskhost-Signature"
)

// Errors returned by Verify.
var (
	ErrBadSignature   = errors.New("webhook: signature does not match")
	ErrStaleTimestamp = errors.New("webhook: timestamp outside the allowed window")
)

// Sign returns the X-Taskhost-Signature value for body sent at timestamp
// (Unix seconds, as sent in X-Taskhost-Timestamp):
// "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body)).
func Sign(secret []byte, timestamp string, body []byte) string {
	return "sha256=" + hex.EncodeToString(mac(secret, timestamp, body))
}

func mac(secret []byte, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a received delivery: signature and timestamp are the values
// of the X-Taskhost-Signature and X-Taskhost-Timestamp headers, body the raw
// request body. With maxAge > 0, a timestamp further than maxAge from now,
// in either direction, is refused with ErrStaleTimestamp, which stops
// replays. The comparison takes constant time.
func Verify(secret []byte, timestamp, signature string, body []byte, maxAge time.Duration, now time.Time) error {
	if maxAge > 0 {
		sec, err := strconv.ParseInt(timestamp, 10, 64)
		if err != nil {
			return ErrStaleTimestamp
		}
		if d := now.Sub(time.Unix(sec, 0)); d > maxAge || d < -maxAge {
			return ErrStaleTimestamp
		}
	}
	hexSum, ok := strings.CutPrefix(signature, "sha256=")
	if !ok {
		return ErrBadSignature
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil || !hmac.Equal(got, mac(secret, timestamp, body)) {
		return ErrBadSignature
	}
	return nil
}
