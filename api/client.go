package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client talks to a weft server's /api/v1 routes. The CLI is built on it.
type Client struct {
	// Base is the server's URL, e.g. http://localhost:3500.
	Base string
	// Token is sent as dapr-api-token when set.
	Token string
	// HTTP is the client used (default: one with TLS verification as configured).
	HTTP *http.Client
}

// NewClient returns a client for base. insecureTLS skips certificate checks
// (for self-signed development certificates).
func NewClient(base, token string, insecureTLS bool) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if insecureTLS {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	}
	return &Client{Base: strings.TrimRight(base, "/"), Token: token, HTTP: &http.Client{Transport: tr}}
}

func (c *Client) do(ctx context.Context, method, path string, body any, out any) (int, error) {
	return c.doWith(ctx, method, path, body, out, nil)
}

// doWith is do with extra request headers.
func (c *Client) doWith(ctx context.Context, method, path string, body any, out any, header http.Header) (int, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case json.RawMessage:
		rd = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
	if err != nil {
		return 0, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("dapr-api-token", c.Token)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, fmt.Errorf("cannot reach the weft server at %s: %w", c.Base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode >= 400 {
		e := &Error{Status: resp.StatusCode}
		if json.Unmarshal(data, e) != nil || e.ErrorCode == "" {
			e.ErrorCode, e.Message = http.StatusText(resp.StatusCode), strings.TrimSpace(string(data))
		}
		return resp.StatusCode, e
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode the server's answer: %w", err)
		}
	}
	return resp.StatusCode, nil
}

// Start starts a workflow and returns its instance id.
func (c *Client) Start(ctx context.Context, req StartRequest) (string, error) {
	var out struct {
		ID string `json:"id"`
	}
	_, err := c.do(ctx, http.MethodPost, "/api/v1/instances", req, &out)
	return out.ID, err
}

// Status returns an instance's status.
func (c *Client) Status(ctx context.Context, id string) (*Status, error) {
	var st Status
	_, err := c.do(ctx, http.MethodGet, "/api/v1/instances/"+url.PathEscape(id), nil, &st)
	return &st, err
}

// Wait long-polls until the instance finished; done is false if timeout came first.
func (c *Client) Wait(ctx context.Context, id string, timeout time.Duration) (st *Status, done bool, err error) {
	st = &Status{}
	code, err := c.do(ctx, http.MethodGet, "/api/v1/instances/"+url.PathEscape(id)+"/wait?timeout="+timeout.String(), nil, st)
	return st, code == http.StatusOK, err
}

// Raise raises an event with JSON data (nil for none).
func (c *Client) Raise(ctx context.Context, id, event string, data json.RawMessage, opts ...RaiseOption) error {
	h := http.Header{}
	for _, opt := range opts {
		opt(h)
	}
	_, err := c.doWith(ctx, http.MethodPost, "/api/v1/instances/"+url.PathEscape(id)+"/events/"+url.PathEscape(event), data, nil, h)
	return err
}

// RaiseOption configures Client.Raise.
type RaiseOption func(http.Header)

// WithIdempotencyKey names the event (1 to 64 characters of
// [A-Za-z0-9_.:-]): sent again after an error that left its outcome unknown,
// it is applied once.
func WithIdempotencyKey(key string) RaiseOption {
	return func(h http.Header) { h.Set(IdempotencyKeyHeader, key) }
}

// IdempotencyKeyHeader names a raised event (POST .../events/{name} and
// Dapr's .../raiseEvent/{name}): the same key sent again to the same
// instance within 10 minutes is applied once.
const IdempotencyKeyHeader = "Idempotency-Key"

// Terminate terminates an instance.
func (c *Client) Terminate(ctx context.Context, id string, req TerminateRequest) error {
	_, err := c.do(ctx, http.MethodPost, "/api/v1/instances/"+url.PathEscape(id)+"/terminate", req, nil)
	return err
}

// Suspend pauses an instance.
func (c *Client) Suspend(ctx context.Context, id, reason string) error {
	_, err := c.do(ctx, http.MethodPost, "/api/v1/instances/"+url.PathEscape(id)+"/suspend", map[string]string{"reason": reason}, nil)
	return err
}

// Resume resumes a suspended instance.
func (c *Client) Resume(ctx context.Context, id, reason string) error {
	_, err := c.do(ctx, http.MethodPost, "/api/v1/instances/"+url.PathEscape(id)+"/resume", map[string]string{"reason": reason}, nil)
	return err
}

// Purge deletes a finished instance.
func (c *Client) Purge(ctx context.Context, id string, recursive bool) error {
	_, err := c.do(ctx, http.MethodDelete, fmt.Sprintf("/api/v1/instances/%s?recursive=%t", url.PathEscape(id), recursive), nil, nil)
	return err
}

// Rerun starts a new instance from one of a finished instance's calls and
// returns its id.
func (c *Client) Rerun(ctx context.Context, id string, req RerunRequest) (string, error) {
	var out struct {
		ID string `json:"id"`
	}
	_, err := c.do(ctx, http.MethodPost, "/api/v1/instances/"+url.PathEscape(id)+"/rerun", req, &out)
	return out.ID, err
}

// ForcePurge deletes an instance whether or not it finished (its work in
// flight is dropped).
func (c *Client) ForcePurge(ctx context.Context, id string, recursive bool) error {
	_, err := c.do(ctx, http.MethodDelete, fmt.Sprintf("/api/v1/instances/%s?recursive=%t&force=true", url.PathEscape(id), recursive), nil, nil)
	return err
}

// PurgeFinishedBefore deletes every instance that finished before t and
// returns how many.
func (c *Client) PurgeFinishedBefore(ctx context.Context, t time.Time, recursive bool) (int, error) {
	var out struct {
		Purged int `json:"purged"`
	}
	q := url.Values{"finishedBefore": {t.UTC().Format(time.RFC3339Nano)}, "recursive": {fmt.Sprint(recursive)}}
	_, err := c.do(ctx, http.MethodDelete, "/api/v1/instances?"+q.Encode(), nil, &out)
	return out.Purged, err
}

// List lists instances; q is the query string (status, name, createdFrom, ...).
func (c *Client) List(ctx context.Context, q url.Values) (*ListResponse, error) {
	var out ListResponse
	_, err := c.do(ctx, http.MethodGet, "/api/v1/instances?"+q.Encode(), nil, &out)
	return &out, err
}

// History returns an instance's history.
func (c *Client) History(ctx context.Context, id string) (*HistoryResponse, error) {
	var out HistoryResponse
	_, err := c.do(ctx, http.MethodGet, "/api/v1/instances/"+url.PathEscape(id)+"/history", nil, &out)
	return &out, err
}

// ClusterMembers returns the cluster's members as the server sees them.
func (c *Client) ClusterMembers(ctx context.Context) (*ClusterMembers, error) {
	var out ClusterMembers
	_, err := c.do(ctx, http.MethodGet, "/api/v1/cluster/members", nil, &out)
	return &out, err
}

// RemoveNode removes a node lost for good from the cluster (weft cluster remove).
func (c *Client) RemoveNode(ctx context.Context, node, reason string) error {
	_, err := c.do(ctx, http.MethodPost, "/api/v1/cluster/members/"+url.PathEscape(node)+"/remove", RemoveNodeRequest{Reason: reason}, nil)
	return err
}

// LeaveCluster makes the node at the client's server leave its cluster for
// good, waiting until its partitions moved (weft cluster leave).
func (c *Client) LeaveCluster(ctx context.Context, timeout time.Duration) error {
	_, err := c.do(ctx, http.MethodPost, "/api/v1/cluster/leave?timeout="+url.QueryEscape(timeout.String()), nil, nil)
	return err
}

// ClusterPartitions returns the server's placement table with where each
// partition's data is.
func (c *Client) ClusterPartitions(ctx context.Context) (*ClusterPartitions, error) {
	var out ClusterPartitions
	_, err := c.do(ctx, http.MethodGet, "/api/v1/cluster/partitions", nil, &out)
	return &out, err
}
