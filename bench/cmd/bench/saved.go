package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/weftrt/weft/bench/internal/harness"
)

// saved is the results file (-json): every run's record and what the report
// needs besides, so that a report can be rendered again (-render) or a run can
// reuse another's scenarios (-reuse).
type saved struct {
	Mode        string            `json:"mode"`
	Runs        int               `json:"runs"`
	Started     time.Time         `json:"started"`
	Finished    time.Time         `json:"finished"`
	Commit      string            `json:"commit,omitempty"`
	Engines     []string          `json:"engines"`
	Skipped     map[string]string `json:"skipped,omitempty"`
	Restate     string            `json:"restate,omitempty"`
	Netns       bool              `json:"netns"`
	Interrupted bool              `json:"interrupted,omitempty"`
	Reused      []reusedFrom      `json:"reused,omitempty"`
	Records     []*record         `json:"records"`
}

// reusedFrom says which scenarios of a report came from an earlier run.
type reusedFrom struct {
	File      string    `json:"file"`
	Started   time.Time `json:"started"`
	Commit    string    `json:"commit,omitempty"`
	Scenarios []string  `json:"scenarios"`
}

func (r *report) saved() *saved {
	return &saved{Mode: r.mode, Runs: r.runs, Started: r.started, Finished: r.finished, Commit: r.env.commit, Engines: r.engines,
		Skipped: r.skipped, Restate: r.env.restate, Netns: r.env.netns, Interrupted: r.interrupted,
		Reused: r.reused, Records: r.records}
}

func loadSaved(path string) (*saved, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var sv saved
	if err := json.Unmarshal(b, &sv); err != nil {
		// The first format: the records alone.
		if err2 := json.Unmarshal(b, &sv.Records); err2 != nil {
			return nil, fmt.Errorf("%s: not a results file: %v", path, err)
		}
		sv.Mode, sv.Runs, sv.Engines = "full", 3, allEngines
	}
	for _, rec := range sv.Records {
		invalidateOverrun(rec)
	}
	return &sv, nil
}

// invalidateOverrun marks a 1M-timers run of the first harness, which reported
// figures even when starting the timers ran past their epoch (so they were not
// all pending), as the failure the harness now reports it as.
func invalidateOverrun(rec *record) {
	res := rec.Result
	if rec.Scenario != harness.Timers1M || res == nil || res.Error != "" {
		return
	}
	for _, n := range res.Notes {
		if strings.Contains(n, "overran the epoch") {
			res.Error = "starting the timers ran past their epoch (" + n + "), so they were not all pending when they came due: " +
				"no pending RSS, fire rate or lateness is reported (the RSS below was read once all were started)"
			if v, ok := res.Metrics["pending_rss_mib"]; ok {
				res.Metrics["rss_after_start_mib"] = v
			}
			for k := range res.Metrics {
				if strings.HasPrefix(k, "pending_") || strings.HasPrefix(k, "lateness_") || k == "fire_rate" || k == "fired" || k == "fire_window_s" {
					delete(res.Metrics, k)
				}
			}
			res.Notes = slices.DeleteFunc(res.Notes, func(x string) bool { return x == n })
			return
		}
	}
}

// report rebuilds the report of a saved run.
func (sv *saved) report(all []scenario, env *machine) *report {
	env.restate, env.netns = sv.Restate, sv.Netns
	if sv.Commit != "" {
		env.commit = sv.Commit
	}
	r := &report{mode: sv.Mode, runs: sv.Runs, engines: sv.Engines, env: env, skipped: sv.Skipped,
		started: sv.Started, finished: sv.Finished, interrupted: sv.Interrupted, reused: sv.Reused}
	if r.skipped == nil {
		r.skipped = map[string]string{}
	}
	for _, s := range all {
		if slices.ContainsFunc(sv.Records, func(rec *record) bool { return rec.Scenario == s.name }) {
			r.scenarios = append(r.scenarios, s)
		}
	}
	for _, rec := range sv.Records {
		r.add(rec)
	}
	return r
}

// reuse takes sv's records of the scenarios this run does not run.
func (r *report) reuse(sv *saved, file string, all []scenario) {
	from := reusedFrom{File: file, Started: sv.Started, Commit: sv.Commit}
	running := map[string]bool{}
	for _, s := range r.scenarios {
		running[s.name] = true
	}
	for _, rec := range sv.Records {
		if !running[rec.Scenario] {
			r.add(rec)
			if !slices.Contains(from.Scenarios, rec.Scenario) {
				from.Scenarios = append(from.Scenarios, rec.Scenario)
			}
		}
	}
	r.reused = append(sv.Reused, from)
	// The report lists scenarios in the plan's order.
	var scen []scenario
	for _, s := range all {
		if running[s.name] || slices.Contains(from.Scenarios, s.name) {
			scen = append(scen, s)
		}
	}
	r.scenarios = scen
	for _, e := range sv.Engines {
		if !slices.Contains(r.engines, e) {
			r.engines = append(r.engines, e)
		}
	}
}
