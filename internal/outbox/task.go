package outbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unsafe"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
)

// asynq's defaults, applied the way asynq.Client applies them.
const (
	defaultQueue    = "default"
	defaultMaxRetry = 25
	defaultTimeout  = 30 * time.Minute
)

// The options given to asynq.NewTask live in an unexported field of
// asynq.Task. The outbox must see them (the queue and task ID among them), so
// it reads the field by its offset, found once by reflection. New refuses to
// run if the field is not there, rather than lose options silently.
var (
	taskOptsOffset uintptr
	taskOptsFound  bool
)

func init() {
	f, ok := reflect.TypeOf(asynq.Task{}).FieldByName("opts")
	if ok && f.Type == reflect.TypeOf([]asynq.Option(nil)) {
		taskOptsOffset, taskOptsFound = f.Offset, true
	}
}

// TaskOptions returns the options task was created with (asynq.NewTask's),
// which asynq applies before those of the enqueue call. The slice is the
// task's own; callers must not modify it.
func TaskOptions(t *asynq.Task) []asynq.Option { return taskOptions(t) }

// taskOptions returns the options task was created with. The slice is the
// task's own; callers must not modify it.
func taskOptions(t *asynq.Task) []asynq.Option {
	if !taskOptsFound {
		return nil
	}
	return *(*[]asynq.Option)(unsafe.Add(unsafe.Pointer(t), taskOptsOffset))
}

const asynqPkg = "github.com/hibiken/asynq"

// known reports whether o is one of asynq's own options; asynq ignores any
// other implementation of Option, and so does the outbox.
func known(o asynq.Option) bool {
	return o != nil && reflect.TypeOf(o).PkgPath() == asynqPkg
}

// lastTaskID returns the task ID set by the last TaskID option in either
// list (call options override task options), and whether there was one.
func lastTaskID(taskOpts, callOpts []asynq.Option) (string, bool) {
	return lastString(taskOpts, callOpts, asynq.TaskIDOpt)
}

// lastString returns the value of the last option of type typ in either
// list (call options override task options), and whether there was one.
func lastString(taskOpts, callOpts []asynq.Option, typ asynq.OptionType) (string, bool) {
	for _, list := range [][]asynq.Option{callOpts, taskOpts} {
		for i := len(list) - 1; i >= 0; i-- {
			if o := list[i]; known(o) && o.Type() == typ {
				v, _ := o.Value().(string)
				return v, true
			}
		}
	}
	return "", false
}

// spec is a task with its options composed the way asynq.Client composes
// them, ProcessIn turned into an absolute time. It is what the outbox stores.
type spec struct {
	ID        string
	Type      string
	Payload   []byte
	Headers   map[string]string
	Queue     string
	MaxRetry  int
	Timeout   time.Duration // 0: none given
	Deadline  time.Time     // zero: none given
	Unique    time.Duration // 0: not unique
	ProcessAt time.Time     // zero: process when delivered
	Retention time.Duration
	Group     string
	Accepted  time.Time
}

// compose validates task and opts as asynq.Client does and returns the spec.
// id is used when no TaskID option is present.
func compose(task *asynq.Task, opts []asynq.Option, id string, now time.Time) (spec, error) {
	if task == nil {
		return spec{}, errors.New("task cannot be nil")
	}
	if strings.TrimSpace(task.Type()) == "" {
		return spec{}, errors.New("task typename cannot be empty")
	}
	s := spec{
		ID:       id,
		Type:     task.Type(),
		Payload:  task.Payload(),
		Headers:  task.Headers(),
		Queue:    defaultQueue,
		MaxRetry: defaultMaxRetry,
		Accepted: now,
	}
	all := append(append([]asynq.Option(nil), taskOptions(task)...), opts...)
	for _, o := range all {
		if !known(o) {
			continue
		}
		var err error
		switch o.Type() {
		case asynq.MaxRetryOpt:
			s.MaxRetry, err = value[int](o)
		case asynq.QueueOpt:
			var q string
			if q, err = value[string](o); err != nil {
				break
			}
			if strings.TrimSpace(q) == "" {
				return spec{}, errors.New("queue name must contain one or more characters")
			}
			s.Queue = q
		case asynq.TaskIDOpt:
			var tid string
			if tid, err = value[string](o); err != nil {
				break
			}
			if strings.TrimSpace(tid) == "" {
				return spec{}, errors.New("task ID cannot be empty")
			}
			s.ID = tid
		case asynq.TimeoutOpt:
			s.Timeout, err = value[time.Duration](o)
		case asynq.DeadlineOpt:
			s.Deadline, err = value[time.Time](o)
		case asynq.UniqueOpt:
			var ttl time.Duration
			if ttl, err = value[time.Duration](o); err != nil {
				break
			}
			if ttl < time.Second {
				return spec{}, errors.New("Unique TTL cannot be less than 1s")
			}
			s.Unique = ttl
		case asynq.ProcessAtOpt:
			s.ProcessAt, err = value[time.Time](o)
		case asynq.ProcessInOpt:
			var d time.Duration
			d, err = value[time.Duration](o)
			s.ProcessAt = now.Add(d)
		case asynq.RetentionOpt:
			s.Retention, err = value[time.Duration](o)
		case asynq.GroupOpt:
			var g string
			if g, err = value[string](o); err != nil {
				break
			}
			if strings.TrimSpace(g) == "" {
				return spec{}, errors.New("group key cannot be empty")
			}
			s.Group = g
		}
		if err != nil {
			return spec{}, err
		}
	}
	if s.ID == "" {
		s.ID = uuid.NewString()
	}
	return s, nil
}

// value returns o's value as a T.
func value[T any](o asynq.Option) (T, error) {
	v, ok := o.Value().(T)
	if !ok {
		return v, fmt.Errorf("option %s: unexpected value of type %T", o, o.Value())
	}
	return v, nil
}

// task rebuilds the asynq task and options that deliver s.
func (s spec) task() (*asynq.Task, []asynq.Option) {
	opts := make([]asynq.Option, 0, 9)
	opts = append(opts, asynq.TaskID(s.ID), asynq.Queue(s.Queue), asynq.MaxRetry(s.MaxRetry))
	if s.Timeout != 0 {
		opts = append(opts, asynq.Timeout(s.Timeout))
	}
	if !s.Deadline.IsZero() {
		opts = append(opts, asynq.Deadline(s.Deadline))
	}
	if s.Unique != 0 {
		opts = append(opts, asynq.Unique(s.Unique))
	}
	if !s.ProcessAt.IsZero() {
		opts = append(opts, asynq.ProcessAt(s.ProcessAt))
	}
	if s.Retention != 0 {
		opts = append(opts, asynq.Retention(s.Retention))
	}
	if s.Group != "" {
		opts = append(opts, asynq.Group(s.Group))
	}
	return asynq.NewTaskWithHeaders(s.Type, s.Payload, s.Headers), opts
}

// info describes s as asynq.Client would describe it had Redis accepted it
// at now: pending, scheduled (a future ProcessAt) or aggregating (a group).
func (s spec) info(now time.Time) *asynq.TaskInfo {
	timeout := s.Timeout
	if timeout == 0 && s.Deadline.IsZero() {
		timeout = defaultTimeout
	}
	info := &asynq.TaskInfo{
		ID:        s.ID,
		Queue:     s.Queue,
		Type:      s.Type,
		Payload:   s.Payload,
		Headers:   s.Headers,
		MaxRetry:  s.MaxRetry,
		Timeout:   time.Duration(int64(timeout.Seconds())) * time.Second,
		Group:     s.Group,
		Retention: time.Duration(int64(s.Retention.Seconds())) * time.Second,
	}
	if !s.Deadline.IsZero() && s.Deadline.Unix() != 0 {
		info.Deadline = time.Unix(s.Deadline.Unix(), 0)
	}
	switch {
	case s.ProcessAt.After(now):
		info.State, info.NextProcessAt = asynq.TaskStateScheduled, s.ProcessAt
	case s.Group != "":
		info.State = asynq.TaskStateAggregating
	default:
		info.State, info.NextProcessAt = asynq.TaskStatePending, now
	}
	return info
}

// recordVersion is the version of the stored form.
const recordVersion = 1

// record is the stored form of a spec. Times are Unix nanoseconds (0 for
// the zero time), durations nanoseconds.
type record struct {
	V         int               `json:"v"`
	ID        string            `json:"id"`
	Type      string            `json:"type"`
	Payload   []byte            `json:"payload,omitempty"`
	Headers   map[string]string `json:"headers,omitempty"`
	Queue     string            `json:"queue"`
	MaxRetry  int               `json:"max_retry"`
	Timeout   int64             `json:"timeout,omitempty"`
	Deadline  int64             `json:"deadline,omitempty"`
	Unique    int64             `json:"unique,omitempty"`
	ProcessAt int64             `json:"process_at,omitempty"`
	Retention int64             `json:"retention,omitempty"`
	Group     string            `json:"group,omitempty"`
	Accepted  int64             `json:"accepted"`
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func (s spec) encode() ([]byte, error) {
	return json.Marshal(record{
		V: recordVersion, ID: s.ID, Type: s.Type, Payload: s.Payload, Headers: s.Headers,
		Queue: s.Queue, MaxRetry: s.MaxRetry, Timeout: int64(s.Timeout),
		Deadline: unixNano(s.Deadline), Unique: int64(s.Unique), ProcessAt: unixNano(s.ProcessAt),
		Retention: int64(s.Retention), Group: s.Group, Accepted: unixNano(s.Accepted),
	})
}

func decode(b []byte) (spec, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return spec{}, err
	}
	if r.V != recordVersion {
		return spec{}, fmt.Errorf("unknown record version %d", r.V)
	}
	if r.ID == "" || r.Type == "" || r.Queue == "" {
		return spec{}, errors.New("record lacks id, type or queue")
	}
	return spec{
		ID: r.ID, Type: r.Type, Payload: r.Payload, Headers: r.Headers, Queue: r.Queue,
		MaxRetry: r.MaxRetry, Timeout: time.Duration(r.Timeout), Deadline: fromUnixNano(r.Deadline),
		Unique: time.Duration(r.Unique), ProcessAt: fromUnixNano(r.ProcessAt),
		Retention: time.Duration(r.Retention), Group: r.Group, Accepted: fromUnixNano(r.Accepted),
	}, nil
}
