package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/weftrt/weft/placement"
)

// ErrNotFound is returned (possibly wrapped) when a record does not exist.
var ErrNotFound = errors.New("storage: not found")

// ErrClosed is returned by every method called after Close. pebble itself
// panics on a closed DB; the check keeps that panic from crossing this API.
var ErrClosed = errors.New("storage: closed")

// Options configures Open.
type Options struct {
	// Dir holds the pebble files; it is created if missing.
	Dir string
	// Partitions is the partition count, fixed when the store is created.
	// 0 means placement.DefaultPartitions.
	Partitions int
	// Logger receives the store's and pebble's logs; nil means slog.Default().
	Logger *slog.Logger
	// CacheSize is pebble's block cache in bytes; 0 keeps pebble's default (8 MB).
	CacheSize int64
	// MemTableSize is pebble's memtable size in bytes; 0 means
	// DefaultMemTableSize.
	MemTableSize int64
	// GroupCommitWindow is how long the WAL waits after one fsync before the
	// next while synced commits are in flight concurrently (see groupCommit): 0
	// means DefaultGroupCommitWindow, a negative value turns the wait off.
	GroupCommitWindow time.Duration
	// ReadOnly opens an existing store for reading only (weft replay --data, on
	// a stopped server's directory): nothing is written, the partition count
	// is the store's own, and every write fails.
	ReadOnly bool
}

// DefaultMemTableSize is the default Options.MemTableSize. Pebble's own default
// (4 MiB) flushed so often under a million instances stepping that level 0
// piled up a dozen tables, each consulted by every activation: measured at 1M
// pending timers, 32 MiB took the fire rate from ~9,000 to ~10,500/s (with a
// 64 MiB block cache) for ~20 MiB more memory.
const DefaultMemTableSize = 32 << 20

// DefaultGroupCommitWindow is the default Options.GroupCommitWindow.
const DefaultGroupCommitWindow = 300 * time.Microsecond

// groupCommitters is how many synced commits must be in flight at once before
// the WAL waits between fsyncs. One instance stepping alone (a chain of
// activities, an HTTP call at low load) stays below it and pays no wait.
const groupCommitters = 4

// DB is one node's store. It is safe for concurrent use.
type DB struct {
	pdb        *pebble.DB
	popts      *pebble.Options // as opened: snapshot files are written with them
	dir        string
	partitions int
	log        *slog.Logger
	// The gate: calls in progress count themselves in inflight and check
	// closing; Close sets closing, then waits for inflight to drain. Atomics, not
	// a mutex, on the path every call takes: a mutex here was a top entry of the
	// runtime's mutex profile. The mutex and cond serve Close's wait alone.
	inflight atomic.Int64
	closing  atomic.Bool
	// syncing counts the synced commits in flight: while it is at least
	// groupCommitters, the WAL waits groupWindow after each fsync.
	syncing     atomic.Int64
	groupWindow time.Duration
	// prefixSeek: the store orders keys with keyComparer, so reads of one
	// instance seek by its prefix and skip tables by their bloom filters.
	prefixSeek bool
	gate       sync.Mutex
	drained    *sync.Cond // signalled when the last call in progress leaves after Close began
}

// Open opens (creating if needed) the store in opts.Dir. A store remembers the
// partition count it was created with and refuses to open with another, since
// every key would belong to a different partition.
func Open(opts Options) (*DB, error) {
	if opts.Dir == "" {
		return nil, errors.New("storage: open: Options.Dir is empty")
	}
	parts := opts.Partitions
	if parts == 0 {
		parts = placement.DefaultPartitions
	}
	if parts < 1 || parts > 1<<16 {
		return nil, fmt.Errorf("storage: open %s: %d partitions; must be 1 to 65536", opts.Dir, parts)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("store", opts.Dir)
	if opts.ReadOnly {
		if desc, err := pebble.Peek(opts.Dir, vfs.Default); err != nil || !desc.Exists {
			return nil, fmt.Errorf("storage: open %s read-only: no weft store there (%v)", opts.Dir, err)
		}
	} else if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("storage: open: create %s: %w", opts.Dir, err)
	}
	cmp, err := storeComparer(opts.Dir)
	if err != nil {
		return nil, err
	}
	popts := &pebble.Options{
		FormatMajorVersion: pebble.FormatNewest, // so data written today opens tomorrow (see LIBRARIES.md)
		Logger:             pebbleLogger{logger},
		EventListener:      stallListener(logger),
		FS:                 sizedWALFS{vfs.Default},
		Comparer:           cmp,
		MemTableSize:       uint64(opts.MemTableSize),
		ReadOnly:           opts.ReadOnly,
	}
	if popts.MemTableSize == 0 {
		popts.MemTableSize = DefaultMemTableSize
	}
	if cmp == keyComparer {
		// Bloom filters over instance prefixes (see keyComparer): 10 bits a
		// prefix, about 1% false positives.
		for i := range popts.Levels {
			popts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		}
	} else {
		logger.Info("store created by an earlier weft: instances are read without prefix filters")
	}
	if opts.CacheSize > 0 {
		c := pebble.NewCache(opts.CacheSize)
		defer c.Unref() // pebble takes its own reference
		popts.Cache = c
	}
	db := &DB{dir: opts.Dir, partitions: parts, log: logger, groupWindow: opts.GroupCommitWindow, prefixSeek: cmp == keyComparer}
	if db.groupWindow == 0 {
		db.groupWindow = DefaultGroupCommitWindow
	}
	if db.groupWindow > 0 {
		popts.WALMinSyncInterval = db.groupCommit
	}
	popts.EnsureDefaults() // as Open does: snapshot files are written with the same options
	pdb, err := pebble.Open(opts.Dir, popts)
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", opts.Dir, err)
	}
	db.pdb, db.popts = pdb, popts
	db.drained = sync.NewCond(&db.gate)
	if opts.ReadOnly {
		if err := db.readMeta(); err != nil {
			_ = pdb.Close()
			return nil, err
		}
		return db, nil
	}
	if err := db.clearStaging(); err != nil {
		_ = pdb.Close()
		return nil, err
	}
	if err := db.checkMeta(); err != nil {
		_ = pdb.Close()
		return nil, err
	}
	return db, nil
}

// groupCommit is pebble's WALMinSyncInterval, asked after every WAL fsync: how
// long the next fsync waits. Pebble already shares an fsync among the commits
// that queue during the one before; under load (many instances stepping at
// once) that gives fsyncs of a few commits each, and every fsync costs kernel
// time and a wave of goroutine wake-ups. Waiting a little lets more commits
// join each one: with 1,000 chains stepping at once a 300–400 µs window took
// BenchmarkChains from 8.6–10.5k to 12.1–13.1k activities/s and cut the CPU
// per activity. A commit alone pays no wait, so the latency of one instance
// stepping by itself is unchanged.
func (db *DB) groupCommit() time.Duration {
	if db.syncing.Load() >= groupCommitters {
		return db.groupWindow
	}
	return 0
}

// checkMeta writes n/meta on first open and compares it on every later one.
func (db *DB) checkMeta() error {
	b, err := db.get(nodeKey(metaKeyName))
	if errors.Is(err, ErrNotFound) {
		v, err := encodeRecord("node meta", &nodeMeta{V: nodeMetaV, Format: storeFormat, Partitions: db.partitions})
		if err != nil {
			return err
		}
		if err := db.pdb.Set(nodeKey(metaKeyName), v, pebble.Sync); err != nil {
			return fmt.Errorf("storage: open %s: write meta: %w", db.dir, err)
		}
		db.log.Info("created store", "partitions", db.partitions)
		return nil
	}
	if err != nil {
		return fmt.Errorf("storage: open %s: read meta: %w", db.dir, err)
	}
	m, err := db.decodeMeta(b)
	if err != nil {
		return err
	}
	if m.Partitions != db.partitions {
		return fmt.Errorf("storage: open %s: the store was created with %d partitions but %d were asked for; "+
			"the partition count is fixed at creation: open it with Partitions: %d, or start a new store in another directory",
			db.dir, m.Partitions, db.partitions, m.Partitions)
	}
	return nil
}

// readMeta takes the partition count of a store opened read-only from its
// meta, and checks its format.
func (db *DB) readMeta() error {
	b, err := db.get(nodeKey(metaKeyName))
	if err != nil {
		return fmt.Errorf("storage: open %s read-only: read meta (is it a weft data directory?): %w", db.dir, err)
	}
	m, err := db.decodeMeta(b)
	if err != nil {
		return err
	}
	db.partitions = m.Partitions
	return nil
}

// decodeMeta decodes the store's meta and checks that this build reads its
// format.
func (db *DB) decodeMeta(b []byte) (nodeMeta, error) {
	var m nodeMeta
	if err := decodeRecord("node meta", nodeMetaV, b, &m); err != nil {
		return m, fmt.Errorf("storage: open %s: %w", db.dir, err)
	}
	if m.Format != storeFormat {
		return m, fmt.Errorf("storage: open %s: store format %d, this build reads format %d", db.dir, m.Format, storeFormat)
	}
	return m, nil
}

// Close flushes nothing extra (synced commits are already durable) and closes
// pebble. Later calls return ErrClosed.
func (db *DB) Close() error {
	if db.closing.Swap(true) {
		return ErrClosed
	}
	db.gate.Lock()
	for db.inflight.Load() > 0 {
		db.drained.Wait()
	}
	db.gate.Unlock()
	if err := db.pdb.Close(); err != nil {
		return fmt.Errorf("storage: close %s: %w", db.dir, err)
	}
	return nil
}

// Partitions is the store's fixed partition count.
func (db *DB) Partitions() int { return db.partitions }

// Metrics returns pebble's metrics, for export; nil after Close.
func (db *DB) Metrics() *pebble.Metrics {
	if db.acquire() != nil {
		return nil
	}
	defer db.release()
	return db.pdb.Metrics()
}

// check enters the store (see acquire) for a call on partition part; the caller
// releases it.
func (db *DB) check(part uint16) error {
	if err := db.validPartition(part); err != nil {
		return err
	}
	return db.acquire()
}

func (db *DB) validPartition(part uint16) error {
	if int(part) >= db.partitions {
		return fmt.Errorf("storage: partition %d out of range (store has %d)", part, db.partitions)
	}
	return nil
}

// acquire registers a call in progress, or returns ErrClosed. Close waits for
// every call in progress before it closes pebble: pebble panics when used after
// Close, and its Close panics while an iterator is open.
func (db *DB) acquire() error {
	// Counted before closing is read, and Close sets closing before it reads the
	// count: either this call sees closing, or Close sees this call.
	db.inflight.Add(1)
	if db.closing.Load() {
		db.release()
		return ErrClosed
	}
	return nil
}

func (db *DB) release() {
	if db.inflight.Add(-1) == 0 && db.closing.Load() {
		db.gate.Lock()
		db.drained.Broadcast()
		db.gate.Unlock()
	}
}

// get returns a copy of the value at key, or ErrNotFound.
func (db *DB) get(key []byte) ([]byte, error) {
	v, closer, err := db.pdb.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), v...)
	if err := closer.Close(); err != nil {
		return nil, err
	}
	return out, nil
}

// scan calls fn for every key in [lower, upper) in order. Key and value are only
// valid during the call. An error from fn stops the scan and is returned as is.
func (db *DB) scan(lower, upper []byte, fn func(k, v []byte) error) error {
	return db.iterate(lower, upper, false, fn)
}

// scanInstance is scan for a range of keys of one instance ([lower, upper) lies
// under the instance's prefix): it seeks by the instance's prefix, so pebble
// reads only the tables whose bloom filters hold it.
func (db *DB) scanInstance(lower, upper []byte, fn func(k, v []byte) error) error {
	return db.iterate(lower, upper, db.prefixSeek, fn)
}

func (db *DB) iterate(lower, upper []byte, byPrefix bool, fn func(k, v []byte) error) (err error) {
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := it.Close(); err == nil {
			err = cerr
		}
	}()
	ok := false
	if byPrefix {
		ok = it.SeekPrefixGE(lower)
	} else {
		ok = it.First()
	}
	for ; ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if err := fn(it.Key(), v); err != nil {
			return err
		}
	}
	return it.Error()
}

// GetMeta returns the node-wide value n/<key>, or ErrNotFound.
func (db *DB) GetMeta(key string) ([]byte, error) {
	if err := db.acquire(); err != nil {
		return nil, err
	}
	defer db.release()
	v, err := db.get(nodeKey(key))
	if err != nil {
		return nil, fmt.Errorf("storage: get meta %q: %w", key, err)
	}
	return v, nil
}

// PutMeta stores the node-wide value n/<key>. sync=false is for hints that may be
// lost in a crash (such as the reminders low-water mark). The key "meta" is the
// store's own record and is refused.
func (db *DB) PutMeta(key string, v []byte, sync bool) error {
	if err := db.acquire(); err != nil {
		return err
	}
	defer db.release()
	if key == metaKeyName || key == "" {
		return fmt.Errorf("storage: put meta: key %q is reserved", key)
	}
	wo := pebble.NoSync
	if sync {
		wo = pebble.Sync
	}
	if err := db.pdb.Set(nodeKey(key), v, wo); err != nil {
		return fmt.Errorf("storage: put meta %q: %w", key, err)
	}
	return nil
}

// LowWaterKey is the meta key of the reminders low-water mark (n/lowwater).
const LowWaterKey = "lowwater"

// Instance returns the row of instance id, or an error wrapping ErrNotFound.
func (db *DB) Instance(part uint16, id string) (*InstanceRecord, error) {
	if err := db.check(part); err != nil {
		return nil, err
	}
	defer db.release()
	b, err := db.get(instanceKey(part, id))
	if err != nil {
		return nil, fmt.Errorf("storage: instance %s: %w", id, err)
	}
	rec, err := decodeInstance(b)
	if err != nil {
		return nil, fmt.Errorf("storage: instance %s: %w", id, err)
	}
	return rec, nil
}

// History calls fn for every history event of id in sequence order. ev is only
// valid during the call; copy it to keep it. An error from fn stops the walk
// and is returned unwrapped.
func (db *DB) History(part uint16, id string, fn func(seq uint64, ev []byte) error) error {
	row, err := db.Instance(part, id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	var in *Inline
	if row != nil {
		if in, err = row.InlineState(); err != nil {
			return fmt.Errorf("storage: read history of %s: %w", id, err)
		}
	}
	if in != nil && !in.HistoryKeys {
		for seq, ev := range in.History {
			if err := fn(uint64(seq), ev); err != nil {
				return err
			}
		}
		return nil
	}
	return db.seqScan(part, id, "history", historyPrefix(part, id), fn)
}

// Inbox calls fn for every inbox entry of id (events held while suspended) in
// sequence order, with the same rules as History.
func (db *DB) Inbox(part uint16, id string, fn func(seq uint64, b []byte) error) error {
	return db.seqScan(part, id, "inbox", inboxPrefix(part, id), fn)
}

// errCallback marks an error returned by a caller's callback, so it is passed
// through without the storage context that wraps our own errors.
type errCallback struct{ err error }

func (e errCallback) Error() string { return e.err.Error() }

func unwrapCallback(err error, wrap func(error) error) error {
	var cb errCallback
	if errors.As(err, &cb) {
		return cb.err
	}
	if err == nil {
		return nil
	}
	return wrap(err)
}

func (db *DB) seqScan(part uint16, id, what string, prefix []byte, fn func(uint64, []byte) error) error {
	if err := db.check(part); err != nil {
		return err
	}
	defer db.release()
	err := db.scanInstance(prefix, prefixEnd(prefix), func(k, v []byte) error {
		seq, err := seqSuffix(k, len(prefix))
		if err != nil {
			return err
		}
		if err := fn(seq, v); err != nil {
			return errCallback{err}
		}
		return nil
	})
	return unwrapCallback(err, func(err error) error { return fmt.Errorf("storage: read %s of %s: %w", what, id, err) })
}

// Outbox returns the events id has yet to send, oldest first.
func (db *DB) Outbox(part uint16, id string) ([]OutboxRecord, error) {
	if err := db.check(part); err != nil {
		return nil, err
	}
	defer db.release()
	return db.outbox(part, id)
}

func (db *DB) outbox(part uint16, id string) ([]OutboxRecord, error) {
	var out []OutboxRecord
	p := outboxPrefix(part, id)
	err := db.scanInstance(p, prefixEnd(p), func(k, v []byte) error {
		rec, err := decodeOutbox(v)
		if err != nil {
			return fmt.Errorf("key %q: %w", k, err)
		}
		out = append(out, rec)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: read outbox of %s: %w", id, err)
	}
	return out, nil
}

// ReceivedMark returns the newest outbox record of sender that id applied; the
// zero mark if it applied none.
func (db *DB) ReceivedMark(part uint16, id, sender string) (ReceivedMark, error) {
	if err := db.check(part); err != nil {
		return ReceivedMark{}, err
	}
	defer db.release()
	if err := ValidateInstanceID(sender); err != nil {
		return ReceivedMark{}, fmt.Errorf("storage: received mark of %s: sender: %w", id, err)
	}
	v, err := db.get(receivedMarkKey(part, id, sender))
	if errors.Is(err, ErrNotFound) {
		return ReceivedMark{}, nil
	}
	if err != nil {
		return ReceivedMark{}, fmt.Errorf("storage: received mark of %s from %s: %w", id, sender, err)
	}
	var m ReceivedMark
	if err := decodeRecord("received mark", receivedMarkV, v, &m); err != nil {
		return ReceivedMark{}, err
	}
	return m, nil
}

// ClientEvents calls fn with every client event request id that id recorded
// (Batch.PutClientEvent) and when it was applied, in request id order.
func (db *DB) ClientEvents(part uint16, id string, fn func(request string, at time.Time)) error {
	if err := db.check(part); err != nil {
		return err
	}
	defer db.release()
	p := clientEventPrefix(part, id)
	err := db.scanInstance(p, prefixEnd(p), func(k, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("key %q: malformed time", k)
		}
		fn(string(k[len(p):]), decodeTime(v))
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: read client events of %s: %w", id, err)
	}
	return nil
}

// HasReceivedMarks reports whether id keeps a received mark of any sender.
func (db *DB) HasReceivedMarks(part uint16, id string) (bool, error) {
	if err := db.check(part); err != nil {
		return false, err
	}
	defer db.release()
	found := errors.New("found")
	p := receivedMarkPrefix(part, id)
	err := db.scanInstance(p, prefixEnd(p), func(_, _ []byte) error { return found })
	if errors.Is(err, found) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("storage: read the received marks of %s: %w", id, err)
	}
	return false, nil
}

// ReceivedSenders lists the senders id keeps a received mark of, in order.
func (db *DB) ReceivedSenders(part uint16, id string) ([]string, error) {
	if err := db.check(part); err != nil {
		return nil, err
	}
	defer db.release()
	var out []string
	p := receivedMarkPrefix(part, id)
	err := db.scanInstance(p, prefixEnd(p), func(k, _ []byte) error {
		out = append(out, string(k[len(p):]))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: read the received marks of %s: %w", id, err)
	}
	return out, nil
}

// Activities returns the outstanding activities of id in task order.
func (db *DB) Activities(part uint16, id string) ([]ActivityRecord, error) {
	if err := db.check(part); err != nil {
		return nil, err
	}
	defer db.release()
	return db.activities(part, id)
}

func (db *DB) activities(part uint16, id string) ([]ActivityRecord, error) {
	var out []ActivityRecord
	p := activityPrefix(part, id)
	err := db.scanInstance(p, prefixEnd(p), func(k, v []byte) error {
		rec, err := decodeActivity(v)
		if err != nil {
			return fmt.Errorf("key %q: %w", k, err)
		}
		out = append(out, rec)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: read activities of %s: %w", id, err)
	}
	return out, nil
}

// RemindersOf returns the reminders of instance id, found through its row (or,
// for a row of version 1, its reverse entries), in name order.
func (db *DB) RemindersOf(part uint16, id string) ([]Reminder, error) {
	if err := db.check(part); err != nil {
		return nil, err
	}
	defer db.release()
	var out []Reminder
	err := db.remindersOf(part, id, nil, func(name string, due time.Time) error {
		v, err := db.get(reminderKey(part, due, id, name))
		if err != nil {
			return fmt.Errorf("reminder %q due %s: %w", name, due.Format(time.RFC3339Nano), err)
		}
		payload, err := decodeReminderValue(v)
		if err != nil {
			return fmt.Errorf("reminder %q: %w", name, err)
		}
		out = append(out, Reminder{Partition: part, Instance: id, Name: name, Due: due, Payload: payload})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: read reminders of %s: %w", id, err)
	}
	return out, nil
}

// remindersOf calls fn for each committed reminder of instance id: those its
// row lists, or, for a row of version 1, those its reverse entries name. It
// hands the row, if there is one, to withRow first.
func (db *DB) remindersOf(part uint16, id string, withRow func(*InstanceRecord), fn func(name string, due time.Time) error) error {
	row, err := db.Instance(part, id)
	if errors.Is(err, ErrNotFound) {
		return db.reverseReminders(part, id, fn) // no row: at most stray reverse entries
	}
	if err != nil {
		return err
	}
	if withRow != nil {
		withRow(row)
	}
	in, err := row.InlineState()
	if err != nil {
		return err
	}
	if in == nil {
		return db.reverseReminders(part, id, fn)
	}
	for _, r := range in.Reminders {
		if err := fn(r.Name, r.Due); err != nil {
			return err
		}
	}
	return nil
}

func (db *DB) reverseReminders(part uint16, id string, fn func(name string, due time.Time) error) error {
	p := reverseReminderPrefix(part, id)
	return db.scanInstance(p, prefixEnd(p), func(k, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("malformed reverse reminder entry %q", k)
		}
		return fn(string(k[len(p):]), decodeTime(v))
	})
}

// ScanDue calls fn for the reminders of partition part with from ≤ due < to, in
// ascending due order, at most limit of them (0: no limit). A zero from or to is
// unbounded on that side. An error from fn stops the scan and is returned
// unwrapped, so a caller can stop early with its own sentinel.
func (db *DB) ScanDue(part uint16, from, to time.Time, limit int, fn func(Reminder) error) error {
	if err := db.check(part); err != nil {
		return err
	}
	defer db.release()
	lower, upper := reminderDueRange(part, from, to)
	n := 0
	errLimit := errors.New("limit")
	err := db.scan(lower, upper, func(k, v []byte) error {
		if limit > 0 && n >= limit {
			return errLimit
		}
		r, err := decodeReminder(k, v)
		if err != nil {
			return err
		}
		n++
		if err := fn(r); err != nil {
			return errCallback{err}
		}
		return nil
	})
	if err == errLimit {
		return nil
	}
	return unwrapCallback(err, func(err error) error { return fmt.Errorf("storage: scan reminders of partition %d: %w", part, err) })
}

// Awake calls fn for every instance in the awake set of every partition:
// instances with outstanding work to re-send after a restart.
func (db *DB) Awake(fn func(part uint16, id string) error) error {
	if err := db.acquire(); err != nil {
		return err
	}
	defer db.release()
	for p := 0; p < db.partitions; p++ {
		part := uint16(p)
		prefix := awakePrefix(part)
		err := db.scan(prefix, prefixEnd(prefix), func(k, _ []byte) error {
			if err := fn(part, string(k[len(prefix):])); err != nil {
				return errCallback{err}
			}
			return nil
		})
		if err != nil {
			return unwrapCallback(err, func(err error) error { return fmt.Errorf("storage: scan awake set of partition %d: %w", part, err) })
		}
	}
	return nil
}

// CountByStatus counts the instances of every status from the listing index.
// It reads the whole index: O(instances).
func (db *DB) CountByStatus() (map[Status]int, error) { return db.CountByStatusIn(nil) }

// CountByStatusIn is CountByStatus over the partitions parts (nil: all).
func (db *DB) CountByStatusIn(parts []uint16) (map[Status]int, error) {
	if err := db.acquire(); err != nil {
		return nil, err
	}
	defer db.release()
	counts := make(map[Status]int)
	for p := 0; p < db.partitions; p++ {
		if parts != nil && !slices.Contains(parts, uint16(p)) {
			continue
		}
		prefix := createdIndexPrefix(uint16(p))
		err := db.scan(prefix, prefixEnd(prefix), func(k, v []byte) error {
			e, err := decodeIndexEntry(v)
			if err != nil {
				return fmt.Errorf("key %q: %w", k, err)
			}
			counts[e.Status]++
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("storage: count instances of partition %d: %w", p, err)
		}
	}
	return counts, nil
}

// PurgeInstance adds to b the deletion of every key of instance id: its row,
// history, activities, inbox, reminders (found through the committed row, so
// reminders put in b itself are not seen), its awake entry and its
// listing index entry. createdAt must be the instance's CreatedAt; if it is zero
// the row is read to find it.
func (db *DB) PurgeInstance(b *Batch, part uint16, id string, createdAt time.Time) error {
	if err := db.check(part); err != nil {
		return err
	}
	defer db.release()
	if b.db != db {
		return errors.New("storage: purge: batch belongs to another store")
	}
	err := db.remindersOf(part, id, func(row *InstanceRecord) {
		if createdAt.IsZero() {
			createdAt = row.CreatedAt
		}
	}, func(name string, due time.Time) error {
		return b.b.Delete(reminderKey(part, due, id, name), nil)
	})
	if err != nil {
		return fmt.Errorf("storage: purge %s: reminders: %w", id, err)
	}
	p := instancePrefix(part, id)
	if err := b.b.DeleteRange(p, prefixEnd(p), nil); err != nil {
		return fmt.Errorf("storage: purge %s: %w", id, err)
	}
	if err := b.b.Delete(awakeKey(part, id), nil); err != nil {
		return fmt.Errorf("storage: purge %s: %w", id, err)
	}
	if !createdAt.IsZero() {
		if err := b.b.Delete(createdIndexKey(part, createdAt, id), nil); err != nil {
			return fmt.Errorf("storage: purge %s: %w", id, err)
		}
	}
	return nil
}

// EncodeLowWater and DecodeLowWater give the reminders low-water mark its
// on-disk form (8-byte big-endian unix nanos), kept here with the rest of the
// layout.
func EncodeLowWater(t time.Time) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(timeNanos(t)))
}

// DecodeLowWater is the inverse of EncodeLowWater.
func DecodeLowWater(b []byte) (time.Time, error) {
	if len(b) != 8 {
		return time.Time{}, fmt.Errorf("storage: low-water mark is %d bytes, want 8", len(b))
	}
	return nanosTime(int64(binary.BigEndian.Uint64(b))), nil
}

// InstanceState is everything stored under one instance, as LoadInstance reads it.
type InstanceState struct {
	Row     *InstanceRecord
	History [][]byte // encoded events, in sequence order
	// HistoryKeys: the history is stored as h/<seq> keys rather than in the row.
	HistoryKeys bool
	// Legacy: the row is of version 1 (no inline state); its reminders have
	// reverse entries, which the next write of the row as version 2 deletes.
	Legacy     bool
	Activities []ActivityRecord
	Outbox     []OutboxRecord
	Reminders  []Reminder // Name and Due, no Payload
}

// LoadInstance reads the row, history, activities, outbox and reminders of
// instance id. A row of version 2 holds all but what it counts elsewhere
// (Inline): activating an instance is one point read, which the bloom filters
// take to the one table that has it, plus a prefix seek for a long history
// or for retry and outbox records when there are any. A row of version 1 is
// read with its keys in one pass of one iterator. The inbox is not read. It
// returns ErrNotFound when the instance has no row.
func (db *DB) LoadInstance(part uint16, id string) (*InstanceState, error) {
	if err := db.check(part); err != nil {
		return nil, err
	}
	defer db.release()
	v, err := db.get(instanceKey(part, id))
	if errors.Is(err, ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("storage: load instance %s: %w", id, err)
	}
	row, err := decodeInstance(v)
	if err != nil {
		return nil, fmt.Errorf("storage: load instance %s: %w", id, err)
	}
	in, err := row.InlineState()
	if err != nil {
		return nil, fmt.Errorf("storage: load instance %s: %w", id, err)
	}
	if in == nil {
		return db.loadLegacyInstance(part, id)
	}
	st := &InstanceState{Row: row, History: in.History, HistoryKeys: in.HistoryKeys}
	for _, r := range in.Reminders {
		st.Reminders = append(st.Reminders, Reminder{Partition: part, Instance: id, Name: r.Name, Due: r.Due})
	}
	if in.HistoryKeys {
		err = db.seqScan(part, id, "history", historyPrefix(part, id), func(_ uint64, ev []byte) error {
			st.History = append(st.History, bytes.Clone(ev))
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if in.Retrying > 0 {
		if st.Activities, err = db.activities(part, id); err != nil {
			return nil, err
		}
	}
	if in.Outbox > 0 {
		if st.Outbox, err = db.outbox(part, id); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// loadLegacyInstance reads an instance whose row is of version 1: the row,
// history, activities, outbox and reminders in one pass of one iterator over
// its key prefix.
func (db *DB) loadLegacyInstance(part uint16, id string) (*InstanceState, error) {
	st := &InstanceState{HistoryKeys: true, Legacy: true}
	p := instancePrefix(part, id)
	err := db.scanInstance(p, prefixEnd(p), func(k, v []byte) error {
		rest := k[len(p):]
		switch {
		case len(rest) == 1 && rest[0] == 'm':
			row, err := decodeInstance(v)
			if err != nil {
				return err
			}
			st.Row = row
		case len(rest) > 2 && rest[0] == 'h' && rest[1] == sep:
			st.History = append(st.History, append([]byte(nil), v...))
		case len(rest) > 2 && rest[0] == 'a' && rest[1] == sep:
			rec, err := decodeActivity(v)
			if err != nil {
				return err
			}
			st.Activities = append(st.Activities, rec)
		case len(rest) > 2 && rest[0] == 'o' && rest[1] == sep:
			rec, err := decodeOutbox(v)
			if err != nil {
				return err
			}
			st.Outbox = append(st.Outbox, rec)
		case len(rest) > 3 && rest[0] == 'r' && rest[1] == 'm' && rest[2] == sep:
			if len(v) != 8 {
				return fmt.Errorf("malformed reverse reminder entry %q", k)
			}
			st.Reminders = append(st.Reminders, Reminder{Partition: part, Instance: id, Name: string(rest[3:]), Due: decodeTime(v)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: load instance %s: %w", id, err)
	}
	if st.Row == nil {
		return nil, ErrNotFound
	}
	return st, nil
}

// SyncVisible makes everything a reader can see durable. Pebble publishes a
// committed batch to readers before its WAL sync completes, so a read can see a
// step a crash would still lose; a synced WAL record written after the read
// waits for every earlier record's sync, the WAL being sequential. Concurrent
// callers share fsyncs through pebble's commit pipeline. Client-facing reads
// (status, history, listing) call it before answering.
func (db *DB) SyncVisible() error {
	if err := db.acquire(); err != nil {
		return err
	}
	defer db.release()
	db.syncing.Add(1)
	defer db.syncing.Add(-1)
	if err := db.pdb.LogData([]byte{0}, pebble.Sync); err != nil {
		return fmt.Errorf("storage: sync: %w", err)
	}
	return nil
}
