// Command bench is weft's benchmark harness: for each scenario it runs weft and
// the peers — github.com/microsoft/durabletask-go v0.6.0 and Restate 1.7.12 — in
// the same invocation (sdkchain: weft serve and durabletask-go's sidecar, both
// driven over gRPC by Dapr's Go SDK), alternating, each run in a process of its
// own, and writes a Markdown report with medians, min–max, the ratio weft/peer,
// and each process's peak RSS and CPU seconds.
//
//	cd bench && go run ./cmd/bench -mode quick            # smoke run, a few minutes
//	cd bench && go run ./cmd/bench -mode full -out ../docs/BENCHMARKS.md
//
// `make bench` (quick) and `make bench MODE=full` run it from the top level.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	mode := flag.String("mode", "quick", "quick (scaled-down sizes, 1 run each) or full (the issue's sizes, 3 runs each)")
	out := flag.String("out", "", "report file (default: report-<mode>.md in the bench directory)")
	jsonOut := flag.String("json", "", "raw results file (default: results-<mode>.json in the bench directory)")
	only := flag.String("only", "", "comma-separated scenarios to run (default all): chain,single,fanout,timer1s,timers,timers1m,longchain,idle,restart,latency,sdkchain")
	peers := flag.String("peers", strings.Join(allEngines, ","), "comma-separated engines: weft,durabletask,restate,floor (in sdkchain, weft and durabletask are weft serve and durabletask-go's sidecar; floor, bench/cmd/sdkfloor, runs in sdkchain only)")
	runs := flag.Int("runs", 0, "runs per engine and scenario (default: quick 1, full 3)")
	workDir := flag.String("workdir", "", "where each run's data directory is created (default: the system temporary directory); all engines use the same file system")
	restateServer := flag.String("restate-server", os.Getenv("RESTATE_SERVER"), "restate-server binary (default: @restatedev/restate-server@1.7.12 installed with npm into bench/.restate)")
	netns := flag.String("netns", "auto", "run Restate in a network namespace with only loopback: auto (if unshare works), on, off")
	keep := flag.Bool("keep", false, "keep every run's data directory")
	reuse := flag.String("reuse", "", "a results file of an earlier run (-json): its scenarios that this run does not run go into the report as they were")
	render := flag.String("render", "", "run nothing: write the report (-out) from this results file")
	flag.Parse()

	full := false
	switch *mode {
	case "quick":
	case "full":
		full = true
	default:
		fatalf("-mode must be quick or full, not %q", *mode)
	}
	if *runs == 0 {
		*runs = pick(full, 1, 3)
	}

	benchDir, err := findBenchDir()
	if err != nil {
		fatalf("%v", err)
	}
	if *out == "" {
		*out = filepath.Join(benchDir, "report-"+*mode+".md")
	}
	if *jsonOut == "" {
		*jsonOut = filepath.Join(benchDir, "results-"+*mode+".json")
	}
	if *workDir == "" {
		*workDir = os.TempDir()
	}

	engines := splitList(*peers)
	for _, e := range engines {
		if workerBinary[e] == "" {
			fatalf("unknown engine %q in -peers (weft, durabletask, restate, floor)", e)
		}
	}
	var scenarios []scenario
	want := splitList(*only)
	for _, s := range plan(full) {
		if len(want) == 0 || slices.Contains(want, s.name) {
			scenarios = append(scenarios, s)
		}
	}
	for _, w := range want {
		if !slices.ContainsFunc(scenarios, func(s scenario) bool { return s.name == w }) {
			fatalf("unknown scenario %q in -only", w)
		}
	}

	if *render != "" {
		sv, err := loadSaved(*render)
		if err != nil {
			fatalf("%v", err)
		}
		rep := sv.report(plan(sv.Mode == "full"), describeMachine(*workDir, benchDir))
		if err := os.WriteFile(*out, []byte(rep.markdown()), 0o644); err != nil {
			fatalf("%v", err)
		}
		logf("rendered %s from %s", *out, *render)
		return
	}
	var reused *saved
	if *reuse != "" {
		if reused, err = loadSaved(*reuse); err != nil {
			fatalf("%v", err)
		}
		if reused.Mode != *mode {
			fatalf("-reuse %s holds a %s-mode run, not %s", *reuse, reused.Mode, *mode)
		}
	}

	started := time.Now()
	env := describeMachine(*workDir, benchDir)
	logf("weft benchmark harness, %s mode, %d run(s) per engine; work in %s", *mode, *runs, *workDir)

	// Build the workers.
	binDir := filepath.Join(benchDir, ".bin")
	logf("building workers into %s", binDir)
	build := exec.Command("go", "build", "-o", binDir+string(os.PathSeparator), "./cmd/weftbench", "./cmd/dtbench", "./cmd/restatebench", "./cmd/sdkbench")
	build.Dir, build.Stdout, build.Stderr = benchDir, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fatalf("build the workers: %v\n(if the main module's dependencies changed, `cd bench && go mod tidy` brings the bench module up to date)", err)
	}
	// The servers the selected scenarios start (sdkchain), each a binary of its own,
	// built in this module: weft's through its replace of github.com/weftrt/weft.
	var servers []string
	for _, s := range scenarios {
		for _, e := range s.engines {
			if srv := s.args(e).server; srv != "" && !slices.Contains(servers, srv) && slices.Contains(engines, e) {
				servers = append(servers, srv)
			}
		}
	}
	slices.Sort(servers)
	for _, srv := range servers {
		build := exec.Command("go", "build", "-o", filepath.Join(binDir, srv), serverBinaries[srv])
		build.Dir, build.Stdout, build.Stderr = benchDir, os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fatalf("build %s (%s): %v", srv, serverBinaries[srv], err)
		}
	}

	// Restate: the server binary and the network namespace.
	skipped := map[string]string{} // engine → why it did not run
	r := &runner{binDir: binDir, workDir: *workDir, keep: *keep}
	if slices.Contains(engines, restateEng) {
		path, note, err := ensureRestate(benchDir, *restateServer)
		if err != nil {
			skipped[restateEng] = err.Error()
			logf("Restate will not run: %v", err)
		} else {
			r.restateServer = path
			env.restate = note
		}
		switch *netns {
		case "on":
			r.netns = true
		case "auto":
			r.netns = exec.Command("unshare", "--net", "--", "true").Run() == nil
		}
		env.netns = r.netns
	}
	logDir, err := os.MkdirTemp(*workDir, "weft-bench-logs-")
	if err != nil {
		fatalf("%v", err)
	}
	r.logDir = logDir
	logf("worker logs in %s", logDir)

	rep := &report{mode: *mode, runs: *runs, engines: engines, scenarios: scenarios, env: env, skipped: skipped, started: started}
	if reused != nil {
		rep.reuse(reused, *reuse, plan(full))
	}

	// Interrupt: kill the running worker, write what was measured.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		logf("interrupted: stopping the running worker and writing the partial report")
		rep.interrupted = true
		r.killCurrent()
		rep.finish()
		write(rep, *out, *jsonOut)
		os.Exit(130)
	}()

	total := 0
	for _, s := range scenarios {
		total += s.runsFor(*runs) * len(s.enginesIn(engines, skipped))
	}
	n := 0
	for _, s := range scenarios {
		es := s.enginesIn(engines, skipped)
		for run := range s.runsFor(*runs) {
			for _, e := range es { // alternating: every engine once per round
				n++
				logf("[%d/%d] %s — %s, run %d", n, total, s.title, s.engineName(e), run+1)
				rec := r.run(s, e, run)
				rep.add(rec)
				logf("        %s", rec.summary(s))
			}
		}
	}
	rep.finish()
	write(rep, *out, *jsonOut)
	logf("done in %s: %s", time.Since(started).Round(time.Second), *out)
	if rep.failures > 0 {
		logf("%d run(s) failed; see the report", rep.failures)
	}
}

func (s scenario) runsFor(def int) int {
	if s.runs > 0 {
		return s.runs
	}
	return def
}

// enginesIn is the scenario's engines among those asked for and available.
func (s scenario) enginesIn(engines []string, skipped map[string]string) []string {
	var out []string
	for _, e := range allEngines {
		if s.has(e) && slices.Contains(engines, e) && skipped[e] == "" {
			out = append(out, e)
		}
	}
	return out
}

func (rec *record) summary(s scenario) string {
	if !rec.ok() {
		return fmt.Sprintf("FAILED after %.1fs: %s", rec.Wall, rec.errText())
	}
	var parts []string
	for _, m := range s.metrics[:min(3, len(s.metrics))] {
		if v, ok := rec.Result.Metrics[m.key]; ok {
			parts = append(parts, fmt.Sprintf("%s=%s", m.key, num(v)))
		}
	}
	return fmt.Sprintf("%.1fs wall: %s", rec.Wall, strings.Join(parts, " "))
}

func write(rep *report, out, jsonOut string) {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err == nil {
		if err := os.WriteFile(out, []byte(rep.markdown()), 0o644); err != nil {
			logf("write %s: %v", out, err)
		}
	}
	b, _ := json.MarshalIndent(rep.saved(), "", "  ")
	if err := os.WriteFile(jsonOut, b, 0o644); err != nil {
		logf("write %s: %v", jsonOut, err)
	}
}

// findBenchDir finds the bench module's directory from the working directory
// (bench/ itself or the repository root).
func findBenchDir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for _, d := range []string{wd, filepath.Join(wd, "bench")} {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/weftrt/weft/bench") {
			return d, nil
		}
	}
	return "", fmt.Errorf("run from the repository root or from bench/ (no bench go.mod found from %s)", wd)
}

func splitList(s string) []string {
	var out []string
	for x := range strings.SplitSeq(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(2)
}
