// Package activitylog reads the "activity executed" lines that weft serve's
// sample activities log (examples/seed), for tests that check what ran
// where and when across processes.
package activitylog

import (
	"regexp"
	"sort"
	"strings"
	"time"
)

// Execution is one logged execution of an activity.
type Execution struct {
	Activity, Instance string
	Start, End         time.Time
}

var (
	reActivity = regexp.MustCompile(` activity=(\S+)`)
	reInstance = regexp.MustCompile(` instance=(\S+)`)
	reStarted  = regexp.MustCompile(` started=(\S+)`)
	reTook     = regexp.MustCompile(` took=(\S+)`)
)

// Parse returns the executions the lines log (slog's text format).
func Parse(lines []string) []Execution {
	var out []Execution
	for _, l := range lines {
		if !strings.Contains(l, `msg="activity executed"`) {
			continue
		}
		var e Execution
		m := reStarted.FindStringSubmatch(l)
		d := reTook.FindStringSubmatch(l)
		if m == nil || d == nil {
			continue
		}
		start, err1 := time.Parse(time.RFC3339Nano, m[1])
		took, err2 := time.ParseDuration(d[1])
		if err1 != nil || err2 != nil {
			continue
		}
		e.Start, e.End = start, start.Add(took)
		if m := reActivity.FindStringSubmatch(l); m != nil {
			e.Activity = m[1]
		}
		if m := reInstance.FindStringSubmatch(l); m != nil {
			e.Instance = strings.Trim(m[1], `"`)
		}
		out = append(out, e)
	}
	return out
}

// MostAtOnce is the largest number of executions of activity running at one
// instant (one that ends as another starts does not overlap it).
func MostAtOnce(execs []Execution, activity string) int {
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, e := range execs {
		if e.Activity == activity {
			edges = append(edges, edge{e.Start, 1}, edge{e.End, -1})
		}
	}
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].at.Equal(edges[j].at) {
			return edges[i].delta < edges[j].delta // ends before starts at one instant
		}
		return edges[i].at.Before(edges[j].at)
	})
	now, most := 0, 0
	for _, e := range edges {
		now += e.delta
		most = max(most, now)
	}
	return most
}
