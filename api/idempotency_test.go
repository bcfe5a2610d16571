package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/test/messaging"
)

// An event raised over HTTP with an Idempotency-Key, on either route, is
// applied once however often it is sent; without one, each request is an
// event; a malformed key is a 400 naming the header.
func TestRaiseWithIdempotencyKey(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	rt, err := weft.Open(weft.Options{Dir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	if err := messaging.Register(rt.Registry()); err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewHandler(rt, Options{Logger: quiet}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := rt.Schedule(ctx, "Collector", 4, weft.WithInstanceID("c")); err != nil {
		t.Fatal(err)
	}

	c := NewClient(srv.URL, "", false)
	raise := func(data, key string) {
		t.Helper()
		var opts []RaiseOption
		if key != "" {
			opts = append(opts, WithIdempotencyKey(key))
		}
		if err := c.Raise(ctx, "c", "ping", json.RawMessage(`"`+data+`"`), opts...); err != nil {
			t.Fatalf("raise %s: %v", data, err)
		}
	}
	daprRaise := func(data, key string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1.0/workflows/dapr/c/raiseEvent/ping", strings.NewReader(`"`+data+`"`))
		req.Header.Set(IdempotencyKeyHeader, key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("Dapr's raise route: %s", resp.Status)
		}
	}
	raise("a", "key-1")
	raise("a sent again", "key-1")
	daprRaise("a sent again, Dapr's route", "key-1")
	raise("b", "")
	raise("c", "")
	daprRaise("d", "5f0c3a1e-8b1d-4c4e-9a39-0d1f2e3a4b5c")

	err = c.Raise(ctx, "c", "ping", json.RawMessage(`"x"`), WithIdempotencyKey("no spaces allowed"))
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest || apiErr.ErrorCode != CodeInvalidInput ||
		!strings.Contains(apiErr.Message, IdempotencyKeyHeader) {
		t.Fatalf("a malformed key: %v, want a 400 %s naming the header", err, CodeInvalidInput)
	}

	st, err := rt.WaitForCompletion(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	if want := `["a","b","c","d"]`; string(st.Output) != want {
		t.Fatalf("applied %s, want %s", st.Output, want)
	}
}
