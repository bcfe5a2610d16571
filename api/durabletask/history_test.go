package durabletask

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftrt/weft/api/durabletask/protos"
)

// TestListInstanceIDsAndHistory: ids page by pageSize with the continuation
// token until none is left; a local workflow's history reads as the protocol's
// events; a missing instance or a foreign token is a clear error.
func TestListInstanceIDsAndHistory(t *testing.T) {
	c := serveTest(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var want []string
	for i := range 5 {
		id := fmt.Sprintf("inc-%d", i)
		want = append(want, id)
		if _, err := c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "LocalInc", InstanceId: id, Input: wrapperspb.String("1")}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	var token *string
	for pages := 0; ; pages++ {
		size := uint32(2)
		resp, err := c.ListInstanceIDs(ctx, &protos.ListInstanceIDsRequest{PageSize: &size, ContinuationToken: token})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, resp.GetInstanceIds()...)
		if resp.ContinuationToken == nil {
			break
		}
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		token = resp.ContinuationToken
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("ids %v, want %v", got, want)
	}
	bad := "not-a-token"
	_, err := c.ListInstanceIDs(ctx, &protos.ListInstanceIDsRequest{ContinuationToken: &bad})
	wantCode(t, "a foreign continuation token", err, codes.InvalidArgument)

	if _, err := c.WaitForInstanceCompletion(ctx, &protos.GetInstanceRequest{InstanceId: "inc-0"}); err != nil {
		t.Fatal(err)
	}
	h, err := c.GetInstanceHistory(ctx, &protos.GetInstanceHistoryRequest{InstanceId: "inc-0"})
	if err != nil || len(h.GetEvents()) == 0 || h.GetEvents()[0].GetExecutionStarted().GetName() != "LocalInc" {
		t.Fatalf("history: %v %v", err, h)
	}
	_, err = c.GetInstanceHistory(ctx, &protos.GetInstanceHistoryRequest{InstanceId: "missing"})
	wantCode(t, "history of a missing instance", err, codes.NotFound)
}

// TestReferenceServerManners: a wait for an instance scheduled a moment later
// waits for it (until the call's deadline, then DeadlineExceeded); a start of
// a taken id says "orchestration instance already exists", as clients written
// against durabletask-go's sidecar match.
func TestReferenceServerManners(t *testing.T) {
	c := serveTest(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	started := make(chan error, 1)
	go func() {
		st, err := c.WaitForInstanceStart(ctx, &protos.GetInstanceRequest{InstanceId: "later"})
		if err == nil && !st.GetExists() {
			err = fmt.Errorf("answered exists=false")
		}
		started <- err
	}()
	time.Sleep(100 * time.Millisecond) // the wait is under way before the start
	if _, err := c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "LocalInc", InstanceId: "later", Input: wrapperspb.String("1")}); err != nil {
		t.Fatal(err)
	}
	if err := <-started; err != nil {
		t.Fatalf("a wait for an instance that appears while it waits: %v", err)
	}
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	_, err := c.WaitForInstanceCompletion(short, &protos.GetInstanceRequest{InstanceId: "never"})
	wantCode(t, "a wait for an instance that never appears", err, codes.DeadlineExceeded)

	_, err = c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "LocalInc", InstanceId: "later"})
	wantCode(t, "start of a taken id", err, codes.AlreadyExists)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "orchestration instance already exists") {
		t.Fatalf("AlreadyExists says %q; clients match \"orchestration instance already exists\"", msg)
	}
}

// TestPurgeForce: a purge of an unfinished instance is refused unless forced
// (Dapr 1.16's force); a forced one removes it.
func TestPurgeForce(t *testing.T) {
	c := serveTest(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.StartInstance(ctx, &protos.CreateInstanceRequest{Name: "Remote", InstanceId: "stuck"}); err != nil {
		t.Fatal(err) // no worker: it stays PENDING
	}
	_, err := c.PurgeInstances(ctx, &protos.PurgeInstancesRequest{Request: &protos.PurgeInstancesRequest_InstanceId{InstanceId: "stuck"}})
	wantCode(t, "purge of a pending instance", err, codes.FailedPrecondition)
	force := true
	p, err := c.PurgeInstances(ctx, &protos.PurgeInstancesRequest{Request: &protos.PurgeInstancesRequest_InstanceId{InstanceId: "stuck"}, Force: &force})
	if err != nil || p.GetDeletedInstanceCount() != 1 {
		t.Fatalf("forced purge: %v %v", err, p)
	}
	if got, err := c.GetInstance(ctx, &protos.GetInstanceRequest{InstanceId: "stuck"}); err != nil || got.GetExists() {
		t.Fatalf("after the forced purge: %v %v", err, got)
	}
}
