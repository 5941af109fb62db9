package webhook_test

import (
	"fmt"
	"time"

	"github.com/taskhost/taskhost/plugins/webhook"
)

// A receiver checks a delivery with the two headers and the raw body.
func ExampleVerify() {
	secret := []byte("shared-secret")
	body := []byte(`{"event":"paid"}`)
	sent := time.Unix(1700000000, 0)

	// What the webhook plugin sends:
	timestamp := "1700000000"
	signature := webhook.Sign(secret, timestamp, body)
	fmt.Println(webhook.HeaderSignature+":", signature)

	// What the receiver checks, refusing deliveries older than 5 minutes:
	fmt.Println(webhook.Verify(secret, timestamp, signature, body, 5*time.Minute, sent.Add(time.Minute)))
	fmt.Println(webhook.Verify(secret, timestamp, signature, []byte(`{"event":"refund"}`), 5*time.Minute, sent))
	fmt.Println(webhook.Verify(secret, timestamp, signature, body, 5*time.Minute, sent.Add(time.Hour)))
	// Output:
	// X-Taskhost-Signature: sha256=4324034336518eb99d019cb96c12aabdb20e57cfe4a2387e5a702e6d3ea0586f
	// <nil>
	// webhook: signature does not match
	// webhook: timestamp outside the allowed window
}
