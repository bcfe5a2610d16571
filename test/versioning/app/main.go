// Command app is a program that embeds weft, in the three states of its code
// the rolling-deploy test deploys in turn (-code):
//
//	v1       Order has one version, v1: Reserve, wait for "go", Ship.
//	v2       v1 and v2 (the default): Reserve, Audit, wait for "go", Ship.
//	renamed  v1 changed in place: Reserve became Hold (a divergent change).
//
//	app -code v2 -data DIR -http 127.0.0.1:0   serve weft's HTTP API over DIR
//	app -code v2 replay [replay flags]          check this code against the instances
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/api"
	"github.com/weftrt/weft/replay"
	"github.com/weftrt/weft/workflow"
)

func order(first string, audit bool, version string) func(*workflow.Context, string) (string, error) {
	return func(ctx *workflow.Context, id string) (string, error) {
		if err := ctx.CallActivity(first, id).Await(nil); err != nil {
			return "", err
		}
		if audit {
			if err := ctx.CallActivity("Audit", id).Await(nil); err != nil {
				return "", err
			}
		}
		var ev string
		if err := ctx.WaitForExternalEvent("go", 0).Await(&ev); err != nil {
			return "", err
		}
		return version + " " + ev, ctx.CallActivity("Ship", id).Await(nil)
	}
}

func register(reg *workflow.Registry, code string) error {
	v1 := func() error {
		return workflow.RegisterWorkflow(reg, order("Reserve", false, "v1"), workflow.WithName("Order"), workflow.WithVersion("v1"))
	}
	switch code {
	case "v1":
		return v1()
	case "v2":
		return errors.Join(v1(), workflow.RegisterWorkflow(reg, order("Reserve", true, "v2"), workflow.WithName("Order"), workflow.WithVersion("v2"), workflow.AsDefault()))
	case "renamed":
		return workflow.RegisterWorkflow(reg, order("Hold", false, "v1"), workflow.WithName("Order"), workflow.WithVersion("v1"))
	}
	return fmt.Errorf("-code %q: one of v1, v2, renamed", code)
}

func main() {
	code := flag.String("code", "v1", "")
	data := flag.String("data", "", "")
	addr := flag.String("http", "127.0.0.1:0", "")
	flag.Parse()
	if flag.Arg(0) == "replay" {
		reg := workflow.NewRegistry()
		if err := register(reg, *code); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(replay.Main(reg, flag.Args()[1:], os.Stdout, os.Stderr))
	}
	if err := serve(*code, *data, *addr); err != nil {
		fmt.Fprintln(os.Stderr, "app:", err)
		os.Exit(1)
	}
}

func serve(code, dir, addr string) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	rt, err := weft.Open(weft.Options{Dir: dir, Logger: log, StallRetryDelay: 50 * time.Millisecond})
	if err != nil {
		return err
	}
	defer rt.Close()
	noop := func(context.Context, string) (string, error) { return "", nil }
	if err := errors.Join(register(rt.Registry(), code),
		weft.RegisterActivity(rt, noop, workflow.WithName("Reserve")),
		weft.RegisterActivity(rt, noop, workflow.WithName("Hold")),
		weft.RegisterActivity(rt, noop, workflow.WithName("Audit")),
		weft.RegisterActivity(rt, noop, workflow.WithName("Ship"))); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := rt.Start(ctx); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: api.NewHandler(rt, api.Options{})}
	go srv.Serve(ln)
	fmt.Printf("serving http://%s\n", ln.Addr())
	<-ctx.Done()
	return srv.Close()
}
