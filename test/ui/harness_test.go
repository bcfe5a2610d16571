// Package ui tests weft's web UI in a real browser: it builds cmd/weft once,
// starts `weft serve` on a free port with its own data directory, seeds instances
// through the HTTP API, and drives headless Chromium (Debian's chromium package,
// which .ci/run installs when missing) with chromedp, as a user would: reading
// the list and its counts, clicking into a fan-out, raising the event an
// approval waits for, pausing, resuming, terminating and purging.
//
// Tests wait on DOM conditions (chromedp.WaitVisible, JavaScript predicates
// polled with a deadline), never on fixed sleeps. Each test fails if the page
// threw a JavaScript exception or requested anything from another host, and saves
// a screenshot of the page when it fails (the path is in the test log).
//
// Without Chromium the tests skip with the reason; with WEFT_CHROMIUM=path they
// use that browser. WEFT_UI_SCREENSHOTS=dir saves the README's screenshots
// (ui-list.png, ui-fanout.png) there.
package ui

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/weftrt/weft/api"
)

var (
	weftBin     string // cmd/weft, built once by TestMain
	chromium    string // the browser's executable
	chromiumErr error  // why there is none
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	chromium, chromiumErr = findChromium()
	dir, err := os.MkdirTemp("", "weft-ui-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "ui: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if chromiumErr == nil {
		weftBin = filepath.Join(dir, "weft")
		build := exec.Command("go", "build", "-o", weftBin, "github.com/weftrt/weft/cmd/weft")
		build.Env = append(os.Environ(), "GOFLAGS=") // the server runs at its real speed, without -race
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "ui: go build ./cmd/weft: %v\n%s", err, out)
			return 1
		}
	}
	code := m.Run()
	if chrome.close != nil {
		chrome.close()
	}
	return code
}

// findChromium looks for WEFT_CHROMIUM, then chromium on PATH, then
// /usr/bin/chromium (Debian's package).
func findChromium() (string, error) {
	if p := os.Getenv("WEFT_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("WEFT_CHROMIUM=%s: %w", p, err)
		}
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium", nil
	}
	return "", errors.New("no chromium or chromium-browser on PATH and no /usr/bin/chromium " +
		"(install Debian's package: apt-get install -y chromium; .ci/run does when it can)")
}

// needChromium skips the test, saying why, when there is no browser to drive.
// A WEFT_CHROMIUM that names no file fails it instead.
func needChromium(t *testing.T) {
	t.Helper()
	switch {
	case chromiumErr != nil && os.Getenv("WEFT_CHROMIUM") != "":
		t.Fatal(chromiumErr) // asked for a browser that is not there: a mistake, not a skip
	case chromiumErr != nil:
		t.Skip("chromium not installed: " + chromiumErr.Error())
	}
}

// --- the server ----------------------------------------------------------------

// server is one running `weft serve` process.
type server struct {
	t      *testing.T
	cmd    *exec.Cmd
	URL    string // http://127.0.0.1:PORT
	client *api.Client

	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced on every new line and at exit
	done    chan struct{} // closed once stderr hit EOF and the process was reaped
}

var servingLine = regexp.MustCompile(`msg="weft serving" http=(\S+)`)

// startServer starts `weft serve --http 127.0.0.1:0 --data <tmp> args...` and
// returns once it logged its address. It is killed at the end of the test; its
// log is printed if the test failed.
func startServer(t *testing.T, token string, args ...string) *server {
	t.Helper()
	all := append([]string{"serve", "--http", "127.0.0.1:0", "--grpc", "off", "--data", t.TempDir(), "--samples"}, args...)
	if token != "" {
		all = append(all, "--api-token", token)
	}
	cmd := exec.Command(weftBin, all...)
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "WEFT_") })
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", weftBin, err)
	}
	s := &server{t: t, cmd: cmd, changed: make(chan struct{}), done: make(chan struct{})}
	go s.read(stderr)
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.done
		if t.Failed() {
			t.Logf("stderr of weft %s:\n%s", strings.Join(all, " "), s.summary())
		}
	})
	deadline := time.After(15 * time.Second)
	for {
		s.mu.Lock()
		for _, l := range s.lines {
			if m := servingLine.FindStringSubmatch(l); m != nil {
				s.URL = m[1]
			}
		}
		ch := s.changed
		s.mu.Unlock()
		if s.URL != "" {
			break
		}
		select {
		case <-s.done:
			t.Fatalf("weft serve exited before it logged its address:\n%s", s.summary())
		case <-deadline:
			t.Fatalf("weft serve logged no address within 15s:\n%s", s.summary())
		case <-ch:
		}
	}
	s.client = api.NewClient(s.URL, token, false)
	return s
}

func (s *server) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		s.mu.Lock()
		s.lines = append(s.lines, sc.Text())
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
	}
	_ = s.cmd.Wait()
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	close(s.done)
}

// summary is the server's log without the per-activity lines when there are many.
func (s *server) summary() string {
	s.mu.Lock()
	lines := slices.Clone(s.lines)
	s.mu.Unlock()
	if len(lines) <= 100 {
		return strings.Join(lines, "\n")
	}
	kept := slices.DeleteFunc(lines, func(l string) bool { return strings.Contains(l, `msg="activity executed"`) })
	return fmt.Sprintf("(%d \"activity executed\" lines left out)\n%s", len(lines)-len(kept), strings.Join(kept, "\n"))
}

// start starts a workflow through the API and returns its id.
func (s *server) start(req api.StartRequest) string {
	s.t.Helper()
	id, err := s.client.Start(context.Background(), req)
	if err != nil {
		s.t.Fatalf("start %s %s: %v", req.Name, req.InstanceID, err)
	}
	return id
}

// waitStatus waits until instance id has status want (the long-poll route for
// finished states, polling for the others) and returns it.
func (s *server) waitStatus(id, want string) *api.Status {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var st *api.Status
	var err error
	for ctx.Err() == nil {
		switch want {
		case "COMPLETED", "FAILED", "TERMINATED":
			st, _, err = s.client.Wait(ctx, id, 5*time.Second)
		default:
			st, err = s.client.Status(ctx, id)
		}
		if err == nil && st.Status == want {
			return st
		}
		if err == nil && want != "COMPLETED" && want != "FAILED" && want != "TERMINATED" {
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	s.t.Fatalf("instance %s: want status %s; last status %+v, err %v", id, want, st, err)
	return nil
}

// waitHistory waits until instance id's history has an event of kind (and name,
// if not empty): the runtime got that far.
func (s *server) waitHistory(id, kind, name string) {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		h, err := s.client.History(context.Background(), id)
		if err == nil {
			for _, ev := range h.Events {
				if ev.Kind == kind && (name == "" || ev.Name == name) {
					return
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("instance %s: no %s %s event in its history after 30s", id, kind, name)
}

// --- the browser ---------------------------------------------------------------

// browser is one headless Chromium with one tab, for one test.
type browser struct {
	t    *testing.T
	ctx  context.Context // the tab
	base string          // the server's URL

	mu         sync.Mutex
	console    []string // console errors and warnings
	exceptions []string // uncaught JavaScript exceptions
	foreign    []string // requests for anything not on the server
}

// chrome is the one Chromium the tests share (starting it takes seconds); each
// test has a tab of its own. TestMain closes it.
var chrome struct {
	once  sync.Once
	ctx   context.Context // the browser's first tab; new tabs derive from it
	err   error
	close func()
}

// startChromium starts the shared browser, headless, with a new empty profile.
func startChromium() (context.Context, error) {
	chrome.once.Do(func() {
		profile, err := os.MkdirTemp("", "weft-ui-chromium-")
		if err != nil {
			chrome.err = err
			return
		}
		opts := append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(chromium),
			chromedp.UserDataDir(profile),
			chromedp.NoSandbox,
			chromedp.DisableGPU,
			chromedp.Flag("headless", true),
			chromedp.Flag("disable-quic", true),
			chromedp.Flag("no-first-run", true),
			chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true),
			chromedp.WindowSize(1440, 1000),
		)
		allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancelCtx := chromedp.NewContext(allocCtx)
		chrome.close = func() {
			cancelCtx()
			cancelAlloc() // waits for the browser to exit
			_ = os.RemoveAll(profile)
		}
		// The first action starts the browser; its context has no deadline, so
		// the browser lives until close.
		if err := chromedp.Do(ctx); err != nil {
			chrome.err = fmt.Errorf("start %s: %w", chromium, err)
			return
		}
		chrome.ctx = ctx
	})
	return chrome.ctx, chrome.err
}

// newBrowser opens a tab for the test in the shared Chromium, and checks at the
// end that the pages threw nothing and asked no other host for anything. When
// the test failed it saves a screenshot first.
func newBrowser(t *testing.T, s *server) *browser {
	t.Helper()
	needChromium(t)
	browserCtx, err := startChromium()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancelTab := chromedp.NewContext(browserCtx)
	t.Cleanup(cancelTab) // closes the tab
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	b := &browser{t: t, ctx: ctx, base: s.URL}
	host := mustHost(t, s.URL)
	if err := chromedp.Listen(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			b.exceptions = append(b.exceptions, exceptionText(ev.ExceptionDetails))
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
				var parts []string
				for _, a := range ev.Args {
					if a.Value != nil {
						parts = append(parts, string(a.Value))
					} else {
						parts = append(parts, a.Description)
					}
				}
				b.console = append(b.console, string(ev.Type)+": "+strings.Join(parts, " "))
			}
		case *network.EventRequestWillBeSent:
			u, err := url.Parse(ev.Request.URL)
			if err != nil || (u.Scheme != "data" && u.Host != host) {
				b.foreign = append(b.foreign, ev.Request.URL)
			}
		}
	}); err != nil {
		t.Fatalf("listen to the tab: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b.screenshotOnFailure()
		}
	})
	t.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, e := range b.exceptions {
			t.Errorf("the page threw: %s", e)
		}
		for _, u := range b.foreign {
			t.Errorf("the page requested %s: the UI must ask nothing of any other host", u)
		}
		if t.Failed() && len(b.console) > 0 {
			t.Logf("browser console:\n%s", strings.Join(b.console, "\n"))
		}
	})
	return b
}

func mustHost(t *testing.T, raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d == nil {
		return "?"
	}
	s := d.Text
	if d.Exception != nil && d.Exception.Description != "" {
		s += " " + d.Exception.Description
	}
	return fmt.Sprintf("%s (%s:%d:%d)", s, d.URL, d.LineNumber+1, d.ColumnNumber+1)
}

// screenshotOnFailure saves the page as it is to $WEFT_UI_ARTIFACTS (default:
// weft-ui-failures in the temporary directory) and logs where.
func (b *browser) screenshotOnFailure() {
	dir := os.Getenv("WEFT_UI_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "weft-ui-failures")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Logf("no screenshot: %v", err)
		return
	}
	path := filepath.Join(dir, regexp.MustCompile(`[^A-Za-z0-9_-]+`).ReplaceAllString(b.t.Name(), "_")+".png")
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err == nil {
		err = os.WriteFile(path, png, 0o644)
	}
	if err != nil {
		b.t.Logf("no screenshot: %v", err)
		return
	}
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	b.t.Logf("screenshot of the page (%s) when the test failed: %s", loc, path)
}

// saveScreenshot writes the page to $WEFT_UI_SCREENSHOTS/name when that is set
// (how the README's images are made).
func (b *browser) saveScreenshot(name string) {
	b.t.Helper()
	dir := os.Getenv("WEFT_UI_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(b.timeout(10*time.Second), chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("saved %s", filepath.Join(dir, name))
}

// timeout is the tab's context with a deadline, for one action. (Canceled by
// the test's end at the latest: the tab's own context is.)
func (b *browser) timeout(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(b.ctx, d)
	b.t.Cleanup(cancel)
	return ctx
}

// open loads path (e.g. "/" or "/ui/#/instances/x") and waits until the page
// drew its first answer from the API.
func (b *browser) open(path string) {
	b.t.Helper()
	if err := chromedp.Do(b.timeout(20*time.Second), chromedp.Navigate(b.base+path)); err != nil {
		b.t.Fatalf("open %s: %v", path, err)
	}
	b.waitJS("the page loaded", `document.getElementById('page')?.dataset.loaded === 'true'`)
}

// goTo changes the page through the URL's fragment, as a link in the UI does.
func (b *browser) goTo(fragment string) {
	b.t.Helper()
	// Every route mounts a fresh #page: wait for the new one, since the old one
	// may still be marked loaded when the hashchange event has not run yet.
	b.eval(fmt.Sprintf(`(window.weftTestOldPage = document.getElementById('page'), location.hash = %q, true)`, fragment))
	b.waitJS("the page loaded", `document.getElementById('page') !== window.weftTestOldPage && document.getElementById('page').dataset.loaded === 'true'`)
}

// waitJS polls a JavaScript predicate until it is truthy, for up to 20 s.
func (b *browser) waitJS(what, predicate string) {
	b.t.Helper()
	ctx := b.timeout(25 * time.Second)
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](predicate,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil {
		b.t.Fatalf("waiting for %s (%s): %v", what, predicate, err)
	}
}

// waitVisible waits until the element sel (CSS) is visible.
func (b *browser) waitVisible(sel string) {
	b.t.Helper()
	if err := chromedp.Do(b.timeout(20*time.Second), chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
		b.t.Fatalf("waiting for %s to be visible: %v", sel, err)
	}
}

// click clicks the element sel (CSS) once it is visible.
// A page that refreshes a list re-renders its rows: a node found by a
// selector can be replaced before the click reaches it, and the click then
// fails on a node id that no longer exists; it is found again and clicked.
func (b *browser) click(sel string) {
	b.t.Helper()
	for attempt := 1; ; attempt++ {
		err := chromedp.Do(b.timeout(20*time.Second), chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
		if err == nil {
			return
		}
		if attempt == 5 || !strings.Contains(err.Error(), "Could not find node with given id") {
			b.t.Fatalf("click %s: %v", sel, err)
		}
	}
}

// typeInto replaces the value of the input sel by typing text.
func (b *browser) typeInto(sel, text string) {
	b.t.Helper()
	if err := chromedp.Do(b.timeout(20*time.Second), chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
		b.t.Fatalf("type into %s: %v", sel, err)
	}
	b.eval(fmt.Sprintf(`(el => (el.value = '', true))(document.querySelector(%q))`, sel))
	if err := chromedp.Do(b.timeout(20*time.Second), chromedp.SendKeys(chromedp.CSS(sel), text)); err != nil {
		b.t.Fatalf("type into %s: %v", sel, err)
	}
}

// eval evaluates a JavaScript expression and returns its value as T.
func evalAs[T any](b *browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.timeout(20*time.Second), chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func (b *browser) eval(expr string) { evalAs[bool](b, expr) }

// text is the text of the first element matching sel (CSS), "" if none.
func (b *browser) text(sel string) string {
	b.t.Helper()
	return evalAs[string](b, fmt.Sprintf(`document.querySelector(%q)?.textContent ?? ''`, sel))
}
