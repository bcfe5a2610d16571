package durabletask

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftrt/weft/api/durabletask/protos"
)

// RaiseEvent with an idempotency key in its metadata is applied once however
// often it is sent; without one every call is an event; a malformed key is
// InvalidArgument. The events are held while the first episode is out, so the
// next episode carries exactly what was applied, in order.
func TestRaiseEventIdempotencyKeyMetadata(t *testing.T) {
	c := serveTest(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := c.GetWorkItems(ctx, &protos.GetWorkItemsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "Remote", InstanceId: "k"}); err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil || first.GetWorkflowRequest().GetInstanceId() != "k" {
		t.Fatalf("the first episode: %v %v", first, err)
	}
	raise := func(data, key string) error {
		ctx := ctx
		if key != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, IdempotencyKeyMetadata, key)
		}
		_, err := c.RaiseEvent(ctx, &protos.RaiseEventRequest{InstanceId: "k", Name: "ping", Input: wrapperspb.String(`"` + data + `"`)})
		return err
	}
	for _, r := range []struct{ data, key string }{{"a", "key-a"}, {"a again", "key-a"}, {"b", ""}, {"c", "key-c"}, {"c again", "key-c"}} {
		if err := raise(r.data, r.key); err != nil {
			t.Fatalf("raise %s: %v", r.data, err)
		}
	}
	wantCode(t, "a malformed key", raise("x", "not a key"), codes.InvalidArgument)

	if _, err := c.CompleteWorkflowTask(ctx, &protos.WorkflowResponse{InstanceId: "k", CompletionToken: first.GetCompletionToken()}); err != nil {
		t.Fatal(err)
	}
	next, err := stream.Recv() // within ctx's deadline
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range next.GetWorkflowRequest().GetNewEvents() {
		if r := ev.GetEventRaised(); r != nil {
			got = append(got, r.GetInput().GetValue())
		}
	}
	if want := []string{`"a"`, `"b"`, `"c"`}; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("the episode after the raises carries %v, want %v", got, want)
	}
}
