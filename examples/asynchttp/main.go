// Command asynchttp shows the asynchronous request-reply pattern of the seed: it
// starts weft's HTTP server in-process and acts as its HTTP client — start the
// workflow (202 Accepted, a Location to poll and a Retry-After), poll the status
// as Retry-After says until it is COMPLETED — printing every response.
//
// The order costs more than the approval threshold, so the first polls see it
// RUNNING (waiting for ManagerApproval); the program then plays the manager and
// approves it over HTTP.
//
//	go run ./examples/asynchttp
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/api"
	"github.com/weftrt/weft/examples/seed"
)

func main() {
	dir := flag.String("dir", "", "data directory (default: a temporary one)")
	flag.Parse()
	if err := run(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "asynchttp:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	if dir == "" {
		tmp, err := os.MkdirTemp("", "weft-asynchttp-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	rt, err := weft.Open(weft.Options{Dir: dir, Logger: quiet})
	if err != nil {
		return err
	}
	defer rt.Close()
	if err := seed.Register(rt, seed.Config{ApprovalThreshold: 100, ApprovalTimeout: time.Minute, Logger: quiet}); err != nil {
		return err
	}
	if err := rt.Start(context.Background()); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: api.NewHandler(rt, api.Options{Logger: quiet})}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()
	fmt.Println("weft is serving on", base)

	// 1. The start API: 202 Accepted, where to poll, and how soon.
	order := `{"Name":"Office chairs","Quantity":4,"TotalCost":1280}`
	fmt.Printf("\n> POST /v1.0-beta1/workflows/dapr/OrderProcessingWorkflow/start?instanceID=order-42\n  %s\n", order)
	resp, body, err := call(http.MethodPost, base+"/v1.0-beta1/workflows/dapr/OrderProcessingWorkflow/start?instanceID=order-42", order)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("start answered %s: %s", resp.Status, body)
	}
	location := resp.Header.Get("Location")

	// 2. The status API, polled as Retry-After says until a final status.
	approved := false
	for {
		wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		time.Sleep(time.Duration(max(wait, 1)) * time.Second)
		fmt.Printf("\n> GET %s\n", location)
		if resp, body, err = call(http.MethodGet, base+location, ""); err != nil {
			return err
		}
		status := statusOf(body)
		switch status {
		case "COMPLETED", "FAILED", "TERMINATED":
			fmt.Printf("\nfinal status %s\n", status)
			return nil
		case "RUNNING":
			if !approved { // the manager clicks "approve"
				fmt.Printf("\n> POST /v1.0-beta1/workflows/dapr/order-42/raiseEvent/ManagerApproval\n  {\"approved\":true}\n")
				if r, b, err := call(http.MethodPost, base+"/v1.0-beta1/workflows/dapr/order-42/raiseEvent/ManagerApproval", `{"approved":true}`); err != nil {
					return err
				} else if r.StatusCode != http.StatusAccepted {
					return fmt.Errorf("raise event answered %s: %s", r.Status, b)
				}
				approved = true
			}
			resp.Header.Set("Retry-After", "1")
		default:
			return fmt.Errorf("unexpected status %q", status)
		}
	}
}

// call sends a request and prints the response the way curl -i would.
func call(method, url, body string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(method, url, bytes.NewBufferString(body))
	if err != nil {
		return nil, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	fmt.Printf("< %s %s\n", resp.Proto, resp.Status)
	for _, h := range []string{"Location", "Retry-After"} {
		if v := resp.Header.Get(h); v != "" {
			fmt.Printf("< %s: %s\n", h, v)
		}
	}
	if len(b) > 0 {
		fmt.Printf("< %s\n", bytes.TrimSpace(b))
	}
	return resp, b, nil
}

func statusOf(body []byte) string {
	var st struct {
		RuntimeStatus string `json:"runtimeStatus"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return ""
	}
	return st.RuntimeStatus
}
