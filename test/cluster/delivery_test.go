package cluster_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/weftrt/weft/test/messaging"
)

// TestMessagesWaitForAKilledNode: two msgnode processes (test/messaging's
// workflows). Node b is SIGKILLed; while it is dead, instances on a send it
// an event, a child on a finishes toward its parent on b, a parent on a starts
// a child on b, and a recursive terminate reaches for a child on b. Then a is
// SIGKILLed too, with all of it waiting, and restarted; then b. Every message
// arrives: the event, the child's result, the child start, the terminate.
func TestMessagesWaitForAKilledNode(t *testing.T) {
	a := newNode(t, "a", nil)
	a.Bin = msgnodeBin
	a.start()
	b := newNode(t, "b", []string{a.Gossip})
	b.Bin = msgnodeBin
	b.start()
	awaitSettled(t, 60*time.Second, []*node{a, b}, nil)
	ids := ownerTable(t, a).idsOwnedBy("msg", map[string]int{"a": 4, "b": 4})
	onA, onB := ids["a"], ids["b"]
	target, parentOnB, childOfB := onB[0], onB[1], onA[0]
	sender := onA[1]
	parentOfLate, lateChild := onA[2], onB[2]
	parentOfDoomed, doomed := onA[3], onB[3]

	start := func(n *node, name, id string, input any) {
		t.Helper()
		in, _ := json.Marshal(input)
		body, _ := json.Marshal(map[string]any{"name": name, "instanceId": id, "input": json.RawMessage(in)})
		n.must("POST", "/api/v1/instances", string(body), http.StatusAccepted)
	}
	running := func(id string) {
		t.Helper()
		await(t, 30*time.Second, id+" running", func() string {
			st, err := getJSON[status](a, "/api/v1/instances/"+id)
			if err != nil {
				return err.Error()
			}
			if st.Status != "RUNNING" {
				return "status " + st.Status
			}
			return ""
		})
	}
	finished := func(id, wantStatus, wantOutput string) {
		t.Helper()
		st, err := waitFinished(id, []*node{a, b}, time.Now().Add(60*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if st.Status != wantStatus || wantOutput != "" && !jsonEqual(st.Output, []byte(wantOutput)) {
			t.Fatalf("%s: %s with %s (failure %+v); want %s with %s", id, st.Status, st.Output, st.Failure, wantStatus, wantOutput)
		}
	}

	start(a, "Waiter", target, "")
	start(a, "Parent", parentOnB, messaging.ParentInput{Child: childOfB, Workflow: "Waiter"})
	start(a, "Parent", parentOfDoomed, messaging.ParentInput{Child: doomed, Workflow: "Waiter"})
	running(target)
	running(childOfB)
	running(doomed)

	b.kill9()
	await(t, 30*time.Second, "a seeing b dead", func() string {
		md, err := a.members()
		if err != nil {
			return err.Error()
		}
		if m, ok := md.find("b"); !ok || m.State != "dead" {
			return fmt.Sprintf("a lists b as %+v", m)
		}
		return ""
	})
	start(a, "Sender", sender, messaging.SendInput{Target: target, Data: "hello"})
	finished(sender, "COMPLETED", `"sent"`)
	a.must("POST", "/api/v1/instances/"+childOfB+"/events/ping", `"from the child"`, http.StatusAccepted)
	finished(childOfB, "COMPLETED", `"from the child"`)
	start(a, "Parent", parentOfLate, messaging.ParentInput{Child: lateChild, Workflow: "Echo", Input: "x"})
	a.must("POST", "/api/v1/instances/"+parentOfDoomed+"/terminate", `{"recursive":true}`, http.StatusAccepted)
	finished(parentOfDoomed, "TERMINATED", "")

	a.kill9() // everything above waits at a, on disk only
	a.restart()
	b.restart()
	finished(target, "COMPLETED", `"hello"`)
	finished(parentOnB, "COMPLETED", `"from the child"`)
	finished(parentOfLate, "COMPLETED", `"x!"`)
	finished(lateChild, "COMPLETED", `"x!"`)
	finished(doomed, "TERMINATED", "")
}
