package storage

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/weftrt/weft/placement"
)

type listed struct {
	id      string
	part    uint16
	name    string
	status  Status
	created time.Time
}

// seedInstances writes n instances spread over the store's partitions. Every
// third one shares its creation time with the previous, so ordering by id within
// a timestamp is exercised; times start before the epoch so negative ones sort too.
func seedInstances(t *testing.T, db *DB, n int) []listed {
	t.Helper()
	base := time.Unix(-500, 0).UTC()
	var all []listed
	for i := 0; i < n; i += 100 {
		commit(t, db, func(b *Batch) {
			for j := i; j < min(i+100, n); j++ {
				l := listed{
					id:      fmt.Sprintf("inst-%04d", n-j), // ids not in creation order
					name:    []string{"Alpha", "Beta"}[j%2],
					status:  Status(j % 4),
					created: base.Add(time.Duration(j-j%3) * time.Second),
				}
				l.part = placement.PartitionOf(l.id, db.Partitions())
				all = append(all, l)
				must(t, b.PutInstance(l.part, &InstanceRecord{ID: l.id, Name: l.name, Status: l.status, CreatedAt: l.created}))
			}
		})
	}
	slices.SortFunc(all, func(a, b listed) int {
		if c := a.created.Compare(b.created); c != 0 {
			return c
		}
		return cmpString(a.id, b.id)
	})
	return all
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func listAll(t *testing.T, db *DB, q ListQuery) (ids []string, pages int) {
	t.Helper()
	for {
		page, err := db.ListInstances(q)
		must(t, err)
		pages++
		if len(page.Instances) > max(q.Limit, 0) && q.Limit > 0 {
			t.Fatalf("page of %d over limit %d", len(page.Instances), q.Limit)
		}
		for _, in := range page.Instances {
			if in.Partition != placement.PartitionOf(in.ID, db.Partitions()) {
				t.Fatalf("%s listed in partition %d", in.ID, in.Partition)
			}
			ids = append(ids, in.ID)
		}
		if page.NextPageToken == "" {
			return ids, pages
		}
		if len(page.Instances) == 0 {
			t.Fatal("empty page with a next token")
		}
		q.PageToken = page.NextPageToken
		if pages > 10000 {
			t.Fatal("paging does not end")
		}
	}
}

func TestListInstancesPagingAcrossPartitions(t *testing.T) {
	db := openTest(t, t.TempDir(), 64)
	all := seedInstances(t, db, 1000)
	var want []string
	for _, l := range all {
		want = append(want, l.id)
	}
	got, pages := listAll(t, db, ListQuery{Limit: 37})
	if !slices.Equal(got, want) {
		t.Fatalf("paged listing differs from (created, id) order: got %d ids, want %d", len(got), len(want))
	}
	if pages != (1000+36)/37 {
		t.Fatalf("%d pages, want %d", pages, (1000+36)/37)
	}
	// Exactly a multiple of the page size: the last full page has no token.
	got, pages = listAll(t, db, ListQuery{Limit: 500})
	if len(got) != 1000 || pages != 2 {
		t.Fatalf("limit 500: %d ids in %d pages", len(got), pages)
	}
	page, err := db.ListInstances(ListQuery{})
	must(t, err)
	if len(page.Instances) != defaultListLimit || page.NextPageToken == "" {
		t.Fatalf("default limit: %d, token %q", len(page.Instances), page.NextPageToken)
	}
	page, err = db.ListInstances(ListQuery{Limit: 5000})
	must(t, err)
	if len(page.Instances) != maxListLimit || page.NextPageToken != "" {
		t.Fatalf("limit capped at %d: got %d, token %q", maxListLimit, len(page.Instances), page.NextPageToken)
	}
	if _, err := db.ListInstances(ListQuery{PageToken: "!!"}); err == nil {
		t.Fatal("malformed token accepted")
	}
}

func TestListInstancesFilters(t *testing.T) {
	db := openTest(t, t.TempDir(), 16)
	all := seedInstances(t, db, 300)
	from, to := all[50].created, all[200].created
	cases := []struct {
		name string
		q    ListQuery
		keep func(listed) bool
	}{
		{"status", ListQuery{Statuses: []Status{Completed}}, func(l listed) bool { return l.status == Completed }},
		{"statuses", ListQuery{Statuses: []Status{Pending, Failed}}, func(l listed) bool { return l.status == Pending || l.status == Failed }},
		{"name", ListQuery{Name: "Beta"}, func(l listed) bool { return l.name == "Beta" }},
		{"name and status", ListQuery{Name: "Alpha", Statuses: []Status{Running, Completed}}, func(l listed) bool {
			return l.name == "Alpha" && (l.status == Running || l.status == Completed)
		}},
		{"created range", ListQuery{CreatedFrom: from, CreatedTo: to}, func(l listed) bool {
			return !l.created.Before(from) && l.created.Before(to)
		}},
		{"range and name", ListQuery{CreatedFrom: from, Name: "Alpha"}, func(l listed) bool { return !l.created.Before(from) && l.name == "Alpha" }},
		{"nothing", ListQuery{Name: "Gamma"}, func(listed) bool { return false }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var want []string
			for _, l := range all {
				if c.keep(l) {
					want = append(want, l.id)
				}
			}
			for _, limit := range []int{7, 1000} {
				q := c.q
				q.Limit = limit
				got, _ := listAll(t, db, q)
				if !slices.Equal(got, want) {
					t.Fatalf("limit %d: got %v\nwant %v", limit, got, want)
				}
			}
		})
	}
}

func TestListReflectsStatusChangesAndCount(t *testing.T) {
	db := openTest(t, t.TempDir(), 8)
	all := seedInstances(t, db, 40)
	counts, err := db.CountByStatus()
	must(t, err)
	if counts[Pending] != 10 || counts[Running] != 10 || counts[Completed] != 10 || counts[Failed] != 10 {
		t.Fatalf("counts: %v", counts)
	}
	l := all[0]
	commit(t, db, func(b *Batch) {
		must(t, b.PutInstance(l.part, &InstanceRecord{ID: l.id, Name: l.name, Status: Terminated, CreatedAt: l.created}))
	})
	page, err := db.ListInstances(ListQuery{Statuses: []Status{Terminated}})
	must(t, err)
	if len(page.Instances) != 1 || page.Instances[0].ID != l.id || !page.Instances[0].CreatedAt.Equal(l.created) {
		t.Fatalf("after status change: %+v", page.Instances)
	}
	counts, err = db.CountByStatus()
	must(t, err)
	if counts[Terminated] != 1 || counts[l.status] != 9 {
		t.Fatalf("counts after change: %v", counts)
	}
	commit(t, db, func(b *Batch) { must(t, db.PurgeInstance(b, l.part, l.id, l.created)) })
	got, _ := listAll(t, db, ListQuery{})
	if len(got) != 39 || slices.Contains(got, l.id) {
		t.Fatalf("purged instance still listed: %d", len(got))
	}
}
