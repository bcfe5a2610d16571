package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/api"
	"github.com/weftrt/weft/workflow"
)

// None of the seed workflows starts a child workflow, so the recursion of
// terminate and purge cannot be seen through `weft serve`. These tests serve the
// same handler (api.NewHandler, as cmd/weft does) over a runtime that registers a
// tree of child workflows, and drive it over real HTTP.

// treeInput makes Tree start Fanout children, each a Tree of Depth-1; a leaf
// (Depth 0) waits for the event "go" and returns its data.
type treeInput struct {
	Depth  int `json:"depth"`
	Fanout int `json:"fanout"`
}

// Tree is a workflow whose instance ID's children are ID-0, ID-1, ...
func Tree(ctx *workflow.Context, in treeInput) (int, error) {
	if in.Depth == 0 {
		var v int
		err := ctx.WaitForExternalEvent("go", 0).Await(&v)
		return v, err
	}
	tasks := make([]*workflow.Task, in.Fanout)
	for i := range tasks {
		tasks[i] = ctx.CallChildWorkflow("Tree", treeInput{in.Depth - 1, in.Fanout},
			workflow.WithInstanceID(fmt.Sprintf("%s-%d", ctx.InstanceID(), i)))
	}
	sum := 0
	for _, t := range tasks {
		var v int
		if err := t.Await(&v); err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

// treeIDs lists the instance ids of a tree rooted at root.
func treeIDs(root string, depth, fanout int) []string {
	ids := []string{root}
	if depth > 0 {
		for i := range fanout {
			ids = append(ids, treeIDs(fmt.Sprintf("%s-%d", root, i), depth-1, fanout)...)
		}
	}
	return ids
}

func startTreeServer(t *testing.T) *client {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	rt, err := weft.Open(weft.Options{Dir: t.TempDir(), Partitions: 8, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if err := weft.RegisterWorkflow(rt, Tree); err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.NewHandler(rt, api.Options{Logger: logger}))
	t.Cleanup(func() {
		srv.Close()
		if err := rt.Close(); err != nil {
			t.Errorf("close runtime: %v", err)
		}
	})
	return &client{t: t, base: srv.URL, http: srv.Client(), header: http.Header{}}
}

// waitRunning waits until every instance exists and runs.
func waitRunning(t *testing.T, c *client, ids []string) {
	t.Helper()
	eventually(t, 20*time.Second, fmt.Sprintf("running instances %v", ids), func() bool {
		for _, id := range ids {
			r := c.do("GET", "/api/v1/instances/"+id, "")
			if r.Status != 200 || decode[v1Status](t, r).Status != "RUNNING" {
				return false
			}
		}
		return true
	})
}

// stillRunning checks that the instance has not finished.
func stillRunning(t *testing.T, c *client, id string) {
	t.Helper()
	r := c.do("GET", "/api/v1/instances/"+id+"/wait?timeout=100ms", "")
	if r.Status != http.StatusAccepted || decode[v1Status](t, r).Status != "RUNNING" {
		t.Errorf("%s: want it still RUNNING", r)
	}
}

// TestDaprTerminatePurgeRecursive: Dapr's terminate and purge reach the child
// workflows, grandchildren included, unless ?non_recursive=true.
func TestDaprTerminatePurgeRecursive(t *testing.T) {
	t.Parallel()
	c := startTreeServer(t)

	t.Run("recursive by default", func(t *testing.T) {
		ids := treeIDs("ta", 2, 2)
		daprStart(t, c, "v1.0", "Tree", "ta", `{"depth":2,"fanout":2}`)
		waitRunning(t, c, ids)
		if st := c.status("ta-1-0"); st.ParentID != "ta-1" {
			t.Errorf("ta-1-0 has parent %q", st.ParentID)
		}
		c.expect(c.do("POST", "/v1.0/workflows/dapr/ta/terminate", ""), http.StatusAccepted)
		for _, id := range ids {
			if done := c.waitDone(id); done.Status != "TERMINATED" {
				t.Errorf("%s: %s after a recursive terminate", id, done.Status)
			}
		}
		c.expect(c.do("POST", "/v1.0/workflows/dapr/ta/purge", ""), http.StatusAccepted)
		for _, id := range ids {
			wantError(t, c.do("GET", "/v1.0/workflows/dapr/"+id, ""), http.StatusNotFound, "ERR_INSTANCE_ID_NOT_FOUND")
		}
	})

	t.Run("non_recursive", func(t *testing.T) {
		daprStart(t, c, "v1.0-beta1", "Tree", "tb", `{"depth":1,"fanout":2}`)
		waitRunning(t, c, treeIDs("tb", 1, 2))
		c.expect(c.do("POST", "/v1.0-beta1/workflows/dapr/tb/terminate?non_recursive=true", ""), http.StatusAccepted)
		if done := c.waitDone("tb"); done.Status != "TERMINATED" {
			t.Fatalf("tb: %s", done.Status)
		}
		stillRunning(t, c, "tb-0")
		stillRunning(t, c, "tb-1")
		// A child that finishes after its parent was terminated just completes.
		c.expect(c.do("POST", "/v1.0-beta1/workflows/dapr/tb-0/raiseEvent/go", "5"), http.StatusAccepted)
		if done := c.waitDone("tb-0"); done.Status != "COMPLETED" || string(done.Output) != "5" {
			t.Errorf("tb-0: %+v", done)
		}
		c.expect(c.do("POST", "/v1.0-beta1/workflows/dapr/tb-1/terminate", ""), http.StatusAccepted)
		c.waitDone("tb-1")

		c.expect(c.do("POST", "/v1.0-beta1/workflows/dapr/tb/purge?non_recursive=true", ""), http.StatusAccepted)
		wantError(t, c.do("GET", "/v1.0-beta1/workflows/dapr/tb", ""), http.StatusNotFound, "ERR_INSTANCE_ID_NOT_FOUND")
		for _, id := range []string{"tb-0", "tb-1"} {
			c.expect(c.do("GET", "/v1.0-beta1/workflows/dapr/"+id, ""), http.StatusOK)
		}
	})

	t.Run("purge refuses a running child", func(t *testing.T) {
		daprStart(t, c, "v1.0-alpha1", "Tree", "te", `{"depth":1,"fanout":1}`)
		waitRunning(t, c, treeIDs("te", 1, 1))
		c.expect(c.do("POST", "/v1.0-alpha1/workflows/dapr/te/terminate?non_recursive=true", ""), http.StatusAccepted)
		c.waitDone("te")
		wantError(t, c.do("POST", "/v1.0-alpha1/workflows/dapr/te/purge", ""), http.StatusConflict, "ERR_INSTANCE_NOT_FINISHED")
		c.expect(c.do("GET", "/v1.0-alpha1/workflows/dapr/te-0", ""), http.StatusOK)
	})
}

// TestV1TerminatePurgeRecursive: weft's own routes recurse only when asked
// ({"recursive":true}, ?recursive=true).
func TestV1TerminatePurgeRecursive(t *testing.T) {
	t.Parallel()
	c := startTreeServer(t)

	ids := treeIDs("tc", 2, 2)
	v1Start(t, c, `{"name":"Tree","instanceId":"tc","input":{"depth":2,"fanout":2}}`)
	waitRunning(t, c, ids)
	c.expect(c.do("POST", "/api/v1/instances/tc/terminate", `{"reason":"all","recursive":true}`), http.StatusAccepted)
	for _, id := range ids {
		if done := c.waitDone(id); done.Status != "TERMINATED" {
			t.Errorf("%s: %s", id, done.Status)
		}
	}
	c.expect(c.do("DELETE", "/api/v1/instances/tc?recursive=true", ""), http.StatusOK)
	for _, id := range ids {
		wantError(t, c.do("GET", "/api/v1/instances/"+id, ""), http.StatusNotFound, "ERR_INSTANCE_ID_NOT_FOUND")
	}

	v1Start(t, c, `{"name":"Tree","instanceId":"td","input":{"depth":1,"fanout":1}}`)
	waitRunning(t, c, treeIDs("td", 1, 1))
	c.expect(c.do("POST", "/api/v1/instances/td/terminate", `{}`), http.StatusAccepted)
	c.waitDone("td")
	stillRunning(t, c, "td-0")
	c.expect(c.do("POST", "/api/v1/instances/td-0/terminate", ``), http.StatusAccepted)
	c.waitDone("td-0")
	c.expect(c.do("DELETE", "/api/v1/instances/td", ""), http.StatusOK)
	c.expect(c.do("GET", "/api/v1/instances/td-0", ""), http.StatusOK)
}
