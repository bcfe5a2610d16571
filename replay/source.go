package replay

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/weftrt/weft/api"
	"github.com/weftrt/weft/placement"
	"github.com/weftrt/weft/storage"
	"github.com/weftrt/weft/workflow"
)

// Instance is one instance a Source lists.
type Instance struct {
	ID       string
	Workflow string
	Status   string
	// CompletedAt is set for a finished instance.
	CompletedAt time.Time
}

// A Source lists instances and reads their histories: a live server's API
// (FromServer) or a stopped server's data directory (FromData).
type Source interface {
	// Instances calls fn for every instance whose status is one of statuses.
	Instances(ctx context.Context, statuses []string, fn func(Instance) error) error
	// History returns an instance's history, oldest first.
	History(ctx context.Context, id string) ([]workflow.Event, error)
}

// Options choose what Check replays.
type Options struct {
	// Workflows limits the check to these workflow names; empty means every
	// workflow registered in the registry checked against.
	Workflows []string
	// Finished adds the instances that finished (completed, failed,
	// terminated) within this long; 0 checks only unfinished ones.
	Finished time.Duration
}

// unfinished are the statuses whose instances still run code.
var unfinished = []string{"RUNNING", "SUSPENDED", "STALLED", "PENDING"}

// Check replays, against reg, every unfinished instance of the chosen
// workflows that src holds (and those that finished within opts.Finished).
// An instance whose history cannot be read is an error; one that finished
// meanwhile (gone from the source) is left out.
func Check(ctx context.Context, reg *workflow.Registry, src Source, opts Options) ([]Result, error) {
	names := opts.Workflows
	if len(names) == 0 {
		names = reg.Workflows()
	}
	statuses := unfinished
	if opts.Finished > 0 {
		statuses = append(slices.Clone(unfinished), "COMPLETED", "FAILED", "TERMINATED")
	}
	var results []Result
	err := src.Instances(ctx, statuses, func(in Instance) error {
		if !slices.Contains(names, in.Workflow) {
			return nil
		}
		if !in.CompletedAt.IsZero() && time.Since(in.CompletedAt) > opts.Finished {
			return nil
		}
		h, err := src.History(ctx, in.ID)
		if errors.Is(err, errGone) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("history of %s: %w", in.ID, err)
		}
		if len(h) == 0 { // PENDING: not started, nothing recorded to replay
			return nil
		}
		res := History(reg, in.ID, h)
		res.Status = in.Status
		results = append(results, res)
		return ctx.Err()
	})
	return results, err
}

var errGone = errors.New("instance gone")

// FromServer reads instances through the HTTP API of a live server.
func FromServer(c *api.Client) Source { return serverSource{c} }

type serverSource struct{ c *api.Client }

func (s serverSource) Instances(ctx context.Context, statuses []string, fn func(Instance) error) error {
	q := url.Values{"pageSize": {"1000"}, "status": {strings.Join(statuses, ",")}}
	for {
		page, err := s.c.List(ctx, q)
		if err != nil {
			return fmt.Errorf("list instances: %w", err)
		}
		for _, in := range page.Instances {
			inst := Instance{ID: in.ID, Workflow: in.Name, Status: in.Status}
			if in.Status == "COMPLETED" || in.Status == "FAILED" || in.Status == "TERMINATED" {
				st, err := s.c.Status(ctx, in.ID)
				if err != nil {
					continue // purged meanwhile
				}
				if st.CompletedAt != nil {
					inst.CompletedAt = *st.CompletedAt
				}
			}
			if err := fn(inst); err != nil {
				return err
			}
		}
		if page.NextPageToken == "" {
			return nil
		}
		q.Set("pageToken", page.NextPageToken)
	}
}

func (s serverSource) History(ctx context.Context, id string) ([]workflow.Event, error) {
	resp, err := s.c.History(ctx, id)
	var apiErr *api.Error
	if errors.As(err, &apiErr) && apiErr.Status == 404 {
		return nil, errGone
	}
	if err != nil {
		return nil, err
	}
	if len(resp.Events) == 0 {
		return nil, nil
	}
	return FromAPI(resp.Events)
}

// FromData reads instances from a data directory opened read-only; the server
// that writes it must be stopped. Close the returned store when done.
func FromData(dir string) (Source, func() error, error) {
	db, err := storage.Open(storage.Options{Dir: dir, ReadOnly: true, Logger: discard})
	if err != nil {
		return nil, nil, err
	}
	return dataSource{db}, db.Close, nil
}

type dataSource struct{ db *storage.DB }

func (s dataSource) Instances(ctx context.Context, statuses []string, fn func(Instance) error) error {
	q := storage.ListQuery{Limit: 1000}
	for _, name := range statuses {
		st, err := storage.ParseStatus(name)
		if err != nil {
			return err
		}
		q.Statuses = append(q.Statuses, st)
	}
	for {
		page, err := s.db.ListInstances(q)
		if err != nil {
			return fmt.Errorf("list instances: %w", err)
		}
		for _, in := range page.Instances {
			inst := Instance{ID: in.ID, Workflow: in.Name, Status: in.Status.String()}
			if in.Status.Terminal() {
				row, err := s.db.Instance(in.Partition, in.ID)
				if err != nil {
					continue
				}
				inst.CompletedAt = row.CompletedAt
			}
			if err := fn(inst); err != nil {
				return err
			}
		}
		if page.NextPageToken == "" {
			return nil
		}
		q.PageToken = page.NextPageToken
	}
}

func (s dataSource) History(_ context.Context, id string) ([]workflow.Event, error) {
	var out []workflow.Event
	err := s.db.History(placement.PartitionOf(id, s.db.Partitions()), id, func(_ uint64, b []byte) error {
		ev, err := workflow.DecodeEvent(b)
		if err != nil {
			return err
		}
		out = append(out, ev)
		return nil
	})
	return out, err
}
