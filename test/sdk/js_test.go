package sdk

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/microsoft/durabletask-go/api"
	"github.com/microsoft/durabletask-go/client"
)

// jsPackage is the npm package and version of the JavaScript worker. Its proto is
// an older one than durabletask-go's (no completion tokens on work items).
const (
	jsPackage = "@dapr/durabletask-js"
	jsVersion = "1.0.0"
)

// jsWorker registers a chain of three activities and a fan-out whose activities
// are JavaScript functions, and connects to the address given as its argument.
const jsWorker = `"use strict";
const { TaskHubGrpcWorker } = require("@dapr/durabletask-js");
const { whenAll } = require("@dapr/durabletask-js/task");

const address = process.argv[2];

// Activities: (context, input) => output.
const addDigit = async (ctx, s) => s.v * 10 + s.d;
const square = (ctx, n) => n * n;

// Orchestrators are async generators that yield tasks.
const chain = async function* (ctx, v) {
  for (let d = 2; d <= 4; d++) {
    v = yield ctx.callActivity("SdkJsAddDigit", { v, d });
  }
  return v;
};

const fanOut = async function* (ctx, n) {
  const tasks = [];
  for (let i = 1; i <= n; i++) {
    tasks.push(ctx.callActivity("SdkJsSquare", i));
  }
  const results = yield whenAll(tasks);
  return results.reduce((a, b) => a + b, 0);
};

(async () => {
  const worker = new TaskHubGrpcWorker(address);
  worker.addNamedOrchestrator("SdkJsChain", chain);
  worker.addNamedOrchestrator("SdkJsFanOut", fanOut);
  worker.addNamedActivity("SdkJsAddDigit", addDigit);
  worker.addNamedActivity("SdkJsSquare", square);
  await worker.start();
  const stop = async () => { await worker.stop(); process.exit(0); };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
})().catch((e) => { console.error("js worker failed:", e); process.exit(1); });
`

// TestJavaScriptWorker runs workflows written in JavaScript on a
// @dapr/durabletask-js worker connected to weft, started and awaited with the
// durabletask-go client. No Go worker is connected: only the JavaScript one can
// run them.
func TestJavaScriptWorker(t *testing.T) {
	t.Parallel()
	node, errNode := exec.LookPath("node")
	npm, errNpm := exec.LookPath("npm")
	if errNode != nil || errNpm != nil {
		t.Skipf("the JavaScript worker test needs node and npm on PATH: %v %v", errNode, errNpm)
	}
	modules := installJS(t, npm)

	srv := startServer(t)
	script := filepath.Join(t.TempDir(), "worker.js")
	if err := os.WriteFile(script, []byte(jsWorker), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, script, srv.GRPCAddr)
	cmd.Env = cleanEnv("NODE_PATH=" + modules)
	js := startProc(t, "node worker.js", cmd)
	// Printed by the SDK once Hello succeeded and the GetWorkItems stream is open.
	js.waitLine(t, 30*time.Second, regexp.MustCompile(`Successfully connected to`))

	c := client.NewTaskHubGrpcClient(dial(t, srv.GRPCAddr), newLogSink(t, "durabletask-go client"))
	for _, tc := range []struct {
		name     string
		workflow string
		input    any
		want     any
	}{
		{"chain of 3", "SdkJsChain", 1, 1234},
		{"fan-out of 10", "SdkJsFanOut", 10, 385}, // 1² + … + 10²
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			id, err := c.ScheduleNewOrchestration(waitCtx(t), tc.workflow, api.WithInput(tc.input))
			if err != nil {
				t.Fatalf("ScheduleNewOrchestration(%s): %v", tc.workflow, err)
			}
			md, err := c.WaitForOrchestrationCompletion(waitCtx(t), id)
			if err != nil {
				t.Fatalf("WaitForOrchestrationCompletion(%s): %v", id, err)
			}
			wantDone(t, md, api.RUNTIME_STATUS_COMPLETED, tc.want)
		})
	}
}

// registryUnreachable reports whether npm's output says it could not reach the
// registry at all (as opposed to a package or install error, which fails).
func registryUnreachable(out string) bool {
	for _, code := range []string{"ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "ECONNRESET", "ENETUNREACH", "EHOSTUNREACH"} {
		if strings.Contains(out, code) {
			return true
		}
	}
	return false
}

// installJS installs the npm package once into the user cache directory (under a
// file lock, for concurrent runs) and returns its node_modules directory.
func installJS(t *testing.T, npm string) string {
	t.Helper()
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "weft-sdk-test", "durabletask-js-"+jsVersion)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	modules := filepath.Join(dir, "node_modules")
	installed := func() string {
		b, err := os.ReadFile(filepath.Join(modules, filepath.FromSlash(jsPackage), "package.json"))
		if err != nil {
			return ""
		}
		var p struct{ Version string }
		_ = json.Unmarshal(b, &p)
		return p.Version
	}
	if installed() == jsVersion {
		return modules
	}
	pkg := `{"name": "weft-sdk-test-js", "version": "0.0.0", "private": true}` + "\n"
	if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(pkg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "--save-exact",
		"--fetch-retries=1", "--fetch-retry-mintimeout=2000", "--fetch-retry-maxtimeout=5000", jsPackage+"@"+jsVersion)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil && registryUnreachable(string(out)) {
		// Where only the Go module proxy and Debian's packages are reachable (CI
		// may be such a place), the worker cannot be installed: say so, skip.
		t.Skipf("the npm registry is not reachable, so %s@%s cannot be installed: %v\n%s", jsPackage, jsVersion, err, out)
	}
	if err != nil {
		t.Fatalf("npm install %s@%s in %s: %v\n%s", jsPackage, jsVersion, dir, err, out)
	}
	if v := installed(); v != jsVersion {
		t.Fatalf("npm install %s@%s in %s installed version %q\n%s", jsPackage, jsVersion, dir, v, out)
	}
	return modules
}
