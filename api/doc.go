// Package api is weft's HTTP interface: Dapr's workflow routes as they are (so the
// curl commands and SDK clients written for Dapr work unchanged), weft's own
// /api/v1 routes (listing, history, long-poll wait), health, readiness and
// Prometheus metrics, plus a Go client for them (used by the CLI).
//
// Every error is JSON {"errorCode": "...", "message": "..."} with the status code
// Dapr uses for it; no handler panics on malformed input.
package api
