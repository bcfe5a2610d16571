package schedules

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"
	_ "time/tzdata" // CRON_TZ= names resolve on machines without a zoneinfo database

	"github.com/robfig/cron/v3"
)

// ErrInvalidSpec is wrapped by every error that says a Spec cannot be used.
var ErrInvalidSpec = errors.New("invalid schedule")

// Overlap says what a tick does while runs started by earlier ticks still run.
type Overlap string

const (
	// OverlapSkip starts nothing while a run still runs (the default).
	OverlapSkip Overlap = "skip"
	// OverlapBufferOne starts the tick's run once the running one finishes;
	// of several ticks meanwhile, one is kept and the others are skipped.
	OverlapBufferOne Overlap = "buffer-one"
	// OverlapAllowAll starts every tick's run, whatever still runs.
	OverlapAllowAll Overlap = "allow-all"
	// OverlapTerminatePrevious terminates the runs still running, then
	// starts the tick's.
	OverlapTerminatePrevious Overlap = "terminate-previous"
)

var overlaps = []Overlap{OverlapSkip, OverlapBufferOne, OverlapAllowAll, OverlapTerminatePrevious}

// MaxIDLength bounds a schedule's id so that its runs' ids (RunID) fit the 64
// characters an instance id may have.
const MaxIDLength = 32

// DefaultCatchupWindow is how late a tick may still start its run when the
// schedule was down at its time (weft stopped, its partition unavailable).
const DefaultCatchupWindow = time.Hour

// Spec is what a schedule does: start Workflow (at Version, with Input) at
// every tick of Cron or Every.
type Spec struct {
	// ID names the schedule: 1 to MaxIDLength letters, digits, '-', '_', '.'.
	ID       string
	Workflow string
	// Version is the workflow's named version to start ("": its default).
	Version string
	// Input is the JSON input every run starts with.
	Input json.RawMessage
	// Cron is a cron expression: five fields (minute hour day-of-month month
	// day-of-week), six with seconds first, or a descriptor (@hourly, @daily,
	// @weekly, @monthly, @yearly, @every 90s), read in UTC unless it starts
	// with CRON_TZ=<zone> (e.g. "CRON_TZ=Europe/Paris 0 9 * * MON-FRI").
	Cron string
	// Every is a fixed interval (at least a second), counted from the
	// schedule's creation; set either Cron or Every.
	Every time.Duration
	// Overlap is the policy for ticks while a run still runs (default skip).
	Overlap Overlap
	// Jitter delays each tick's run by a pseudo-random amount below it,
	// derived from the schedule and the tick (the same on every replay), so
	// many schedules on one cron line do not all start in the same second.
	Jitter time.Duration
	// CatchupWindow: a tick found due later than this after its time (after
	// downtime) is counted as missed rather than run (default
	// DefaultCatchupWindow).
	CatchupWindow time.Duration
	// Paused creates the schedule paused.
	Paused bool
}

// specJSON is Spec on the wire: durations as Go writes them ("90s", "24h").
type specJSON struct {
	ID            string          `json:"id"`
	Workflow      string          `json:"workflow"`
	Version       string          `json:"version,omitempty"`
	Input         json.RawMessage `json:"input,omitempty"`
	Cron          string          `json:"cron,omitempty"`
	Every         string          `json:"every,omitempty"`
	Overlap       Overlap         `json:"overlap,omitempty"`
	Jitter        string          `json:"jitter,omitempty"`
	CatchupWindow string          `json:"catchupWindow,omitempty"`
	Paused        bool            `json:"paused,omitempty"`
}

func (s Spec) MarshalJSON() ([]byte, error) {
	return json.Marshal(specJSON{ID: s.ID, Workflow: s.Workflow, Version: s.Version, Input: s.Input, Cron: s.Cron,
		Every: durationText(s.Every), Overlap: s.Overlap, Jitter: durationText(s.Jitter),
		CatchupWindow: durationText(s.CatchupWindow), Paused: s.Paused})
}

func (s *Spec) UnmarshalJSON(b []byte) error {
	var j specJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*s = Spec{ID: j.ID, Workflow: j.Workflow, Version: j.Version, Input: j.Input, Cron: j.Cron, Overlap: j.Overlap, Paused: j.Paused}
	for _, d := range []struct {
		name string
		text string
		to   *time.Duration
	}{{"every", j.Every, &s.Every}, {"jitter", j.Jitter, &s.Jitter}, {"catchupWindow", j.CatchupWindow, &s.CatchupWindow}} {
		if d.text == "" {
			continue
		}
		v, err := time.ParseDuration(d.text)
		if err != nil {
			return fmt.Errorf("%s %q is not a duration (e.g. 90s, 15m, 24h): %w", d.name, d.text, ErrInvalidSpec)
		}
		*d.to = v
	}
	return nil
}

func durationText(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// Validate reports what makes s unusable, wrapping ErrInvalidSpec, and fills
// in the defaults (overlap skip, the catch-up window).
func (s *Spec) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("schedule %q: %s: %w", s.ID, fmt.Sprintf(format, args...), ErrInvalidSpec)
	}
	if err := ValidateID(s.ID); err != nil {
		return err
	}
	if strings.TrimSpace(s.Workflow) == "" {
		return bad("no workflow to start: name one")
	}
	switch {
	case s.Cron == "" && s.Every == 0:
		return bad("no timetable: give a cron expression or an interval (every)")
	case s.Cron != "" && s.Every != 0:
		return bad("both a cron expression and an interval: give one")
	case s.Every != 0 && s.Every < time.Second:
		return bad("interval %s is shorter than a second", s.Every)
	case s.Cron != "":
		if _, err := parseCron(s.Cron); err != nil {
			return bad("%v", err)
		}
	}
	if s.Jitter < 0 {
		return bad("jitter %s is negative", s.Jitter)
	}
	if s.Every > 0 && s.Jitter >= s.Every {
		return bad("jitter %s is not shorter than the interval %s: runs would come late enough to pile up", s.Jitter, s.Every)
	}
	if s.CatchupWindow < 0 {
		return bad("catch-up window %s is negative", s.CatchupWindow)
	}
	if s.CatchupWindow == 0 {
		s.CatchupWindow = DefaultCatchupWindow
	}
	if s.Overlap == "" {
		s.Overlap = OverlapSkip
	}
	if !s.Overlap.valid() {
		return bad("overlap policy %q is none of %s", s.Overlap, overlapNames())
	}
	if len(s.Input) > 0 && !json.Valid(s.Input) {
		return bad("input is not JSON")
	}
	return nil
}

// ValidateID reports whether id can name a schedule.
func ValidateID(id string) error {
	if id == "" {
		return fmt.Errorf("schedule id is empty: %w", ErrInvalidSpec)
	}
	if len(id) > MaxIDLength {
		return fmt.Errorf("schedule id %q is %d characters, longer than the %d allowed: %w", id, len(id), MaxIDLength, ErrInvalidSpec)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("schedule id %q may only contain letters, digits, '-', '_' and '.': %w", id, ErrInvalidSpec)
		}
	}
	return nil
}

func (o Overlap) valid() bool {
	for _, v := range overlaps {
		if o == v {
			return true
		}
	}
	return false
}

func overlapNames() string {
	names := make([]string, len(overlaps))
	for i, o := range overlaps {
		names[i] = string(o)
	}
	return strings.Join(names, ", ")
}

// ParseOverlap reads an overlap policy by name.
func ParseOverlap(s string) (Overlap, error) {
	o := Overlap(strings.ToLower(strings.TrimSpace(s)))
	if !o.valid() {
		return "", fmt.Errorf("overlap policy %q is none of %s: %w", s, overlapNames(), ErrInvalidSpec)
	}
	return o, nil
}

var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// parseCron reads a cron expression, in UTC unless it names a zone (the
// library's default, the machine's local zone, would make a schedule fire at
// other times on other nodes).
func parseCron(expr string) (sched cron.Schedule, err error) {
	expr = strings.TrimSpace(expr)
	if !strings.HasPrefix(expr, "CRON_TZ=") && !strings.HasPrefix(expr, "TZ=") {
		expr = "CRON_TZ=UTC " + expr
	}
	defer func() {
		if recover() != nil { // the parser has panicked on some malformed input
			sched, err = nil, fmt.Errorf("cron expression %q cannot be read", expr)
		}
	}()
	sched, err = cronParser.Parse(expr)
	if err != nil {
		return nil, fmt.Errorf("cron expression: %v", err)
	}
	return sched, nil
}

// Next returns the first tick strictly after t, and false when there is none
// (a cron expression that matches no date, such as February 30th).
func (s *Spec) Next(t time.Time) (time.Time, bool) {
	if s.Every > 0 {
		return t.Add(s.Every), true
	}
	sched, err := parseCron(s.Cron)
	if err != nil {
		return time.Time{}, false
	}
	next := sched.Next(t)
	return next, !next.IsZero()
}

// Delay is the jitter of the run of tick: below Jitter, the same for every
// call with the same schedule and tick.
func (s *Spec) Delay(tick time.Time) time.Duration {
	if s.Jitter <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(s.ID))
	var b [8]byte
	u := uint64(tick.UnixNano())
	for i := range b {
		b[i] = byte(u >> (8 * i))
	}
	h.Write(b[:])
	return time.Duration(h.Sum64() % uint64(s.Jitter))
}

// InstanceID is the id of the workflow instance that is schedule id.
func InstanceID(id string) string { return "schedule:" + id }

// ScheduleID is the schedule an instance id names, if it names one.
func ScheduleID(instanceID string) (string, bool) {
	return strings.CutPrefix(instanceID, "schedule:")
}

// RunID is the instance id of the run a schedule starts for tick: the same
// for every attempt to start it, so a tick starts one run however often its
// start is sent. A run started by a trigger is named by the trigger's time
// and the start of its command id (trigger), so that two triggers in one
// millisecond start two runs.
func RunID(scheduleID string, tick time.Time, trigger string) string {
	if trigger == "" {
		return scheduleID + "-" + tick.UTC().Format("20060102T150405Z")
	}
	return scheduleID + "-" + tick.UTC().Format("20060102T150405.000Z") + "-" + trigger[:min(len(trigger), 6)]
}
