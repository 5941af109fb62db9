package quarantine

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// Why a task is set aside, the values of Entry.Reason and of the metric's
// reason label.
const (
	// ReasonMissing: the task hash, or its msg field, is missing or empty.
	ReasonMissing = "missing"
	// ReasonUndecodable: msg is not a TaskMessage that asynq can decode.
	ReasonUndecodable = "undecodable"
	// ReasonIncomplete: msg decodes but lacks its ID, type or queue, or
	// names another ID or queue than its key: asynq could not complete,
	// retry or archive it.
	ReasonIncomplete = "incomplete"
	// ReasonOversized: msg is larger than worker.max_payload_bytes allows.
	// Such a task is archived (asynq's archive, with the reason as its
	// last error), not quarantined: it is well formed.
	ReasonOversized = "oversized"
)

// Reasons lists the reasons.
var Reasons = []string{ReasonMissing, ReasonUndecodable, ReasonIncomplete, ReasonOversized}

// taskMessage is what the guard reads of asynq v0.26.0's TaskMessage
// (internal/proto/asynq.proto).
type taskMessage struct {
	Type, ID, Queue string
	PayloadLen      int
}

// The TaskMessage fields that proto3 decoding checks: its strings must be
// valid UTF-8, and headers (15) is a map<string, string>.
const (
	fieldType     = 1
	fieldPayload  = 2
	fieldID       = 3
	fieldQueue    = 4
	fieldErrorMsg = 7
	fieldUnique   = 10
	fieldGroup    = 14
	fieldHeaders  = 15
)

var errBadUTF8 = errors.New("string field is not valid UTF-8")

// parseMessage reads b as asynq's base.DecodeMessage would (proto.Unmarshal
// into a proto3 TaskMessage) and fails where it fails: malformed wire data,
// or a string (headers included) that is not UTF-8. A field with another
// wire type than its declaration is kept as an unknown field, as proto
// does, and so are unknown fields.
func parseMessage(b []byte) (taskMessage, error) {
	var m taskMessage
	err := walkFields(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case fieldType, fieldID, fieldQueue, fieldErrorMsg, fieldUnique, fieldGroup:
			if !utf8.Valid(v) {
				return fmt.Errorf("field %d: %w", num, errBadUTF8)
			}
		case fieldHeaders:
			if err := walkFields(v, func(num protowire.Number, typ protowire.Type, v []byte) error {
				if typ == protowire.BytesType && (num == 1 || num == 2) && !utf8.Valid(v) {
					return fmt.Errorf("headers: %w", errBadUTF8)
				}
				return nil
			}); err != nil {
				return fmt.Errorf("field %d: %w", fieldHeaders, err)
			}
		}
		switch num {
		case fieldType:
			m.Type = string(v)
		case fieldID:
			m.ID = string(v)
		case fieldQueue:
			m.Queue = string(v)
		case fieldPayload:
			m.PayloadLen = len(v)
		}
		return nil
	})
	return m, err
}

// walkFields calls fn for each field of the message b, with the value of
// a length-delimited field (without its length); it fails on malformed
// wire data.
func walkFields(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		if num > protowire.MaxValidNumber {
			return errors.New("field number out of range")
		}
		b = b[n:]
		var v []byte
		if typ == protowire.BytesType {
			v, n = protowire.ConsumeBytes(b)
		} else {
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := fn(num, typ, v); err != nil {
			return err
		}
	}
	return nil
}

// check classifies a task's msg, read from the hash of task id in queue:
// "" when asynq can decode and process it.
func check(msg []byte, id, queue string) (reason, detail string) {
	m, err := parseMessage(msg)
	switch {
	case len(msg) == 0:
		return ReasonMissing, "the hash has no msg"
	case err != nil:
		return ReasonUndecodable, err.Error()
	case m.ID == "" || m.Type == "" || m.Queue == "":
		return ReasonIncomplete, "msg lacks its id, type or queue"
	case m.ID != id:
		return ReasonIncomplete, "msg names another task id"
	case m.Queue != queue:
		return ReasonIncomplete, "msg names another queue"
	}
	return "", ""
}
