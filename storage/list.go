package storage

import (
	"bytes"
	"container/heap"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// ListQuery selects instances from the listing index.
type ListQuery struct {
	Statuses    []Status  // any of these; empty means all
	Name        string    // exact workflow name; empty means all
	CreatedFrom time.Time // inclusive; zero means unbounded
	CreatedTo   time.Time // exclusive; zero means unbounded
	Limit       int       // page size: 0 means 100, capped at 1000
	PageToken   string    // NextPageToken of the previous page
	// Partitions limits the listing to these partitions; nil means all. A
	// replicated cluster lists each partition on the node that leads it.
	Partitions []uint16
}

// ErrMalformedPageToken: a listing's page token is not one a listing gave.
var ErrMalformedPageToken = errors.New("malformed page token")

// IndexedInstance is one row of a listing.
type IndexedInstance struct {
	Partition uint16
	ID        string
	Name      string
	Status    Status
	CreatedAt time.Time
}

// ListPage is one page of a listing. NextPageToken is empty on the last page.
type ListPage struct {
	Instances     []IndexedInstance
	NextPageToken string
}

const (
	defaultListLimit = 100
	maxListLimit     = 1000
)

// PageTokenAfter is the page token that continues a listing after the instance
// (created, id): a cluster merging the pages of several nodes cuts its own page
// and continues it with the same token on every node.
func PageTokenAfter(created time.Time, id string) string {
	t := encodeTime(created)
	tok := append(append(t[:], sep), id...)
	return base64.RawURLEncoding.EncodeToString(tok)
}

// ListInstances lists instances in (created, id) order across all partitions:
// it merges one index iterator per partition through a heap, so a page costs
// O(page × log partitions) plus the entries the filters skip.
func (db *DB) ListInstances(q ListQuery) (ListPage, error) {
	if err := db.acquire(); err != nil {
		return ListPage{}, err
	}
	defer db.release()
	limit := q.Limit
	switch {
	case limit <= 0:
		limit = defaultListLimit
	case limit > maxListLimit:
		limit = maxListLimit
	}
	var after []byte // (created, id) suffix of the last returned entry
	if q.PageToken != "" {
		tok, err := base64.RawURLEncoding.DecodeString(q.PageToken)
		if err != nil || len(tok) < 10 || tok[8] != sep {
			return ListPage{}, fmt.Errorf("storage: list instances: %w %q", ErrMalformedPageToken, q.PageToken)
		}
		after = tok
	}

	h := &indexHeap{}
	defer func() {
		for _, c := range h.its {
			_ = c.it.Close()
		}
	}()
	for p := 0; p < db.partitions; p++ {
		part := uint16(p)
		if q.Partitions != nil && !slices.Contains(q.Partitions, part) {
			continue
		}
		prefix := createdIndexPrefix(part)
		lower, upper := prefix, prefixEnd(prefix)
		if !q.CreatedFrom.IsZero() {
			lower = createdIndexBound(part, q.CreatedFrom)
		}
		if !q.CreatedTo.IsZero() {
			upper = createdIndexBound(part, q.CreatedTo)
		}
		if after != nil {
			// The successor of the last returned key: its bytes plus 0x00.
			if k := append(append(slices.Clone(prefix), after...), 0); bytes.Compare(k, lower) > 0 {
				lower = k
			}
		}
		if bytes.Compare(lower, upper) >= 0 {
			continue
		}
		it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
		if err != nil {
			return ListPage{}, fmt.Errorf("storage: list instances: partition %d: %w", part, err)
		}
		if !it.First() {
			err := it.Error()
			_ = it.Close()
			if err != nil {
				return ListPage{}, fmt.Errorf("storage: list instances: partition %d: %w", part, err)
			}
			continue
		}
		h.its = append(h.its, &indexCursor{it: it, prefixLen: len(prefix)})
	}
	heap.Init(h)

	var statuses [256]bool
	for _, s := range q.Statuses {
		statuses[s] = true
	}
	var page ListPage
	for h.Len() > 0 {
		c := h.its[0]
		k := c.it.Key()
		v, err := c.it.ValueAndErr()
		if err != nil {
			return ListPage{}, fmt.Errorf("storage: list instances: %w", err)
		}
		part, created, id, err := parseCreatedIndexKey(k)
		if err != nil {
			return ListPage{}, fmt.Errorf("storage: list instances: %w", err)
		}
		e, err := decodeIndexEntry(v)
		if err != nil {
			return ListPage{}, fmt.Errorf("storage: list instances: %s: %w", id, err)
		}
		if (len(q.Statuses) == 0 || statuses[e.Status]) && (q.Name == "" || q.Name == e.Name) {
			if len(page.Instances) == limit {
				// One more match exists: the page is full and not the last.
				last := page.Instances[limit-1]
				page.NextPageToken = PageTokenAfter(last.CreatedAt, last.ID)
				return page, nil
			}
			page.Instances = append(page.Instances, IndexedInstance{Partition: part, ID: id, Name: e.Name, Status: e.Status, CreatedAt: created})
		}
		if c.it.Next() {
			heap.Fix(h, 0)
			continue
		}
		if err := c.it.Error(); err != nil {
			return ListPage{}, fmt.Errorf("storage: list instances: %w", err)
		}
		_ = c.it.Close()
		heap.Pop(h)
	}
	return page, nil
}

// indexCursor is one partition's position in the merged listing.
type indexCursor struct {
	it        *pebble.Iterator
	prefixLen int
}

// suffix is the (created, id) part of the current key, the same for every
// partition's layout, so cursors of different partitions compare directly.
func (c *indexCursor) suffix() []byte { return c.it.Key()[c.prefixLen:] }

type indexHeap struct{ its []*indexCursor }

func (h *indexHeap) Len() int { return len(h.its) }
func (h *indexHeap) Less(i, j int) bool {
	return bytes.Compare(h.its[i].suffix(), h.its[j].suffix()) < 0
}
func (h *indexHeap) Swap(i, j int) { h.its[i], h.its[j] = h.its[j], h.its[i] }
func (h *indexHeap) Push(x any)    { h.its = append(h.its, x.(*indexCursor)) }
func (h *indexHeap) Pop() any {
	c := h.its[len(h.its)-1]
	h.its = h.its[:len(h.its)-1]
	return c
}
