package schedules

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec Spec
		want string // in the error; "" for none
	}{
		{"cron", Spec{ID: "nightly", Workflow: "Report", Cron: "0 2 * * *"}, ""},
		{"cron with seconds", Spec{ID: "s", Workflow: "W", Cron: "*/5 * * * * *"}, ""},
		{"descriptor", Spec{ID: "s", Workflow: "W", Cron: "@hourly"}, ""},
		{"every descriptor", Spec{ID: "s", Workflow: "W", Cron: "@every 90s"}, ""},
		{"zone", Spec{ID: "s", Workflow: "W", Cron: "CRON_TZ=Europe/Paris 0 9 * * MON-FRI"}, ""},
		{"interval", Spec{ID: "a.b_c-1", Workflow: "W", Every: time.Minute, Jitter: 30 * time.Second, Input: json.RawMessage(`{"x":1}`)}, ""},
		{"empty id", Spec{Workflow: "W", Every: time.Minute}, "schedule id is empty"},
		{"long id", Spec{ID: strings.Repeat("a", 33), Workflow: "W", Every: time.Minute}, "longer than the 32"},
		{"id with a colon", Spec{ID: "a:b", Workflow: "W", Every: time.Minute}, "may only contain"},
		{"no workflow", Spec{ID: "s", Every: time.Minute}, "no workflow"},
		{"no timetable", Spec{ID: "s", Workflow: "W"}, "no timetable"},
		{"both", Spec{ID: "s", Workflow: "W", Cron: "@daily", Every: time.Hour}, "give one"},
		{"short interval", Spec{ID: "s", Workflow: "W", Every: time.Millisecond}, "shorter than a second"},
		{"bad cron", Spec{ID: "s", Workflow: "W", Cron: "61 * * * *"}, "cron expression"},
		{"cron of words", Spec{ID: "s", Workflow: "W", Cron: "every day"}, "cron expression"},
		{"unknown zone", Spec{ID: "s", Workflow: "W", Cron: "CRON_TZ=Mars/Olympus 0 9 * * *"}, "cron expression"},
		{"overlap", Spec{ID: "s", Workflow: "W", Every: time.Hour, Overlap: "queue"}, `overlap policy "queue" is none of skip, buffer-one, allow-all, terminate-previous`},
		{"negative jitter", Spec{ID: "s", Workflow: "W", Every: time.Hour, Jitter: -time.Second}, "negative"},
		{"jitter as long as the interval", Spec{ID: "s", Workflow: "W", Every: time.Minute, Jitter: time.Minute}, "not shorter than the interval"},
		{"negative window", Spec{ID: "s", Workflow: "W", Every: time.Hour, CatchupWindow: -time.Second}, "negative"},
		{"input", Spec{ID: "s", Workflow: "W", Every: time.Hour, Input: json.RawMessage(`{`)}, "not JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.spec.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tc.spec.Overlap != OverlapSkip || tc.spec.CatchupWindow != DefaultCatchupWindow {
					t.Errorf("defaults not filled in: overlap %q, catch-up window %s", tc.spec.Overlap, tc.spec.CatchupWindow)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalidSpec) {
				t.Fatalf("error %v; want one containing %q, wrapping ErrInvalidSpec", err, tc.want)
			}
		})
	}
}

func TestNext(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		spec  Spec
		after string
		want  []string // the next ticks; none: no tick at all
	}{
		{Spec{Cron: "0 2 * * *"}, "2026-12-07T01:59:59Z", []string{"2026-12-07T02:00:00Z", "2026-12-08T02:00:00Z"}},
		{Spec{Cron: "*/20 * * * * *"}, "2026-12-07T10:00:00Z", []string{"2026-12-07T10:00:20Z", "2026-12-07T10:00:40Z", "2026-12-07T10:01:00Z"}},
		{Spec{Cron: "@every 90s"}, "2026-12-07T10:00:00Z", []string{"2026-12-07T10:01:30Z", "2026-12-07T10:03:00Z"}},
		// In Paris's time, across the end of summer time.
		{Spec{Cron: "CRON_TZ=Europe/Paris 30 8 * * *"}, "2026-10-24T00:00:00Z", []string{"2026-10-24T06:30:00Z", "2026-10-25T07:30:00Z"}},
		{Spec{Cron: "0 9 * * MON-FRI"}, "2026-12-04T09:00:00Z", []string{"2026-12-07T09:00:00Z"}}, // Friday → Monday
		{Spec{Every: 10 * time.Minute}, "2026-12-07T10:03:00Z", []string{"2026-12-07T10:13:00Z", "2026-12-07T10:23:00Z"}},
		{Spec{Cron: "0 0 30 2 *"}, "2026-12-07T10:00:00Z", nil}, // February 30th
	} {
		tick := at(tc.after)
		for i, w := range tc.want {
			next, ok := tc.spec.Next(tick)
			if !ok || !next.Equal(at(w)) {
				t.Fatalf("%+v after %s: tick %d is %s (%v), want %s", tc.spec, tc.after, i, next, ok, w)
			}
			tick = next
		}
		if tc.want == nil {
			if next, ok := tc.spec.Next(tick); ok {
				t.Errorf("%+v: next tick %s; want none", tc.spec, next)
			}
		}
	}
}

func TestDelayIsStableAndBounded(t *testing.T) {
	s := Spec{ID: "jittered", Jitter: 10 * time.Second}
	tick := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	spread := map[time.Duration]bool{}
	for i := range 100 {
		at := tick.Add(time.Duration(i) * time.Minute)
		d := s.Delay(at)
		if d < 0 || d >= s.Jitter {
			t.Fatalf("delay %s outside [0, %s)", d, s.Jitter)
		}
		if again := s.Delay(at); again != d {
			t.Fatalf("delay of one tick changed: %s then %s", d, again)
		}
		spread[d] = true
	}
	if len(spread) < 90 {
		t.Errorf("100 ticks got only %d distinct delays", len(spread))
	}
	if d := (&Spec{ID: "x"}).Delay(tick); d != 0 {
		t.Errorf("no jitter, delay %s", d)
	}
}

func TestRunIDsAreInstanceIDs(t *testing.T) {
	id := strings.Repeat("s", MaxIDLength)
	tick := time.Date(2026, 12, 7, 10, 0, 0, 123e6, time.UTC)
	for _, run := range []string{RunID(id, tick, ""), RunID(id, tick, "0123456789abcdef")} {
		if len(run) > 64 {
			t.Errorf("run id %q is %d characters, more than an instance id may have", run, len(run))
		}
	}
	if got := RunID("nightly", tick, ""); got != "nightly-20261207T100000Z" {
		t.Errorf("RunID = %q", got)
	}
	if a, b := RunID("s", tick, "aaaaaa11"), RunID("s", tick, "bbbbbb22"); a == b {
		t.Errorf("two triggers in one millisecond share the run id %q", a)
	}
	if got, ok := ScheduleID(InstanceID("nightly")); !ok || got != "nightly" {
		t.Errorf("ScheduleID(InstanceID) = %q, %v", got, ok)
	}
}

func TestSpecJSON(t *testing.T) {
	in := Spec{ID: "s", Workflow: "W", Version: "v2", Input: json.RawMessage(`{"a":1}`), Every: 90 * time.Second,
		Overlap: OverlapBufferOne, Jitter: 5 * time.Second, CatchupWindow: time.Hour, Paused: true}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"every":"1m30s"`) {
		t.Errorf("durations not written as Go writes them: %s", b)
	}
	var out Spec
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if string(out.Input) != string(in.Input) || out.Every != in.Every || out.Jitter != in.Jitter || out.CatchupWindow != in.CatchupWindow ||
		out.Overlap != in.Overlap || out.Version != in.Version || !out.Paused {
		t.Errorf("round trip: %+v, want %+v", out, in)
	}
	err = json.Unmarshal([]byte(`{"id":"s","every":"soon"}`), &out)
	if err == nil || !strings.Contains(err.Error(), `every "soon" is not a duration`) {
		t.Errorf("bad duration: %v", err)
	}
}
