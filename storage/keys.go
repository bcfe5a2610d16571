package storage

// Every key of the store is built and parsed in this file, so the layout can be
// read in one place:
//
//	n/meta                                   node meta record (format version, partition count)
//	n/lowwater                               reminders low-water mark (int64 unix nanos)
//	n/<key>                                  other node-wide metadata (GetMeta/PutMeta)
//	p/<part:2B>/i/<instance>/m               instance row (InstanceRecord), with its Inline state: the
//	                                         history while short, the reminders, counts of a/ and o/
//	p/<part:2B>/i/<instance>/h/<seq:8B>      history event (opaque bytes), once the history outgrew the row
//	p/<part:2B>/i/<instance>/a/<task:8B>     activity being retried (ActivityRecord: attempt, next attempt time)
//	p/<part:2B>/i/<instance>/q/<seq:8B>      inbox entry (opaque bytes)
//	p/<part:2B>/i/<instance>/o/<seq:8B>      outbox entry: a message to send to another instance (OutboxRecord)
//	p/<part:2B>/i/<instance>/s/<sender>      newest outbox entry of sender applied here (ReceivedMark)
//	p/<part:2B>/i/<instance>/e/<request>     a client's event applied here, by its request id → when (8B)
//	p/<part:2B>/i/<instance>/rm/<name>       reverse entry of a reminder → its due time (8B): rows of version 1 only
//	p/<part:2B>/r/<due:8B>/<instance>/<name> reminder by due time → reminder value
//	p/<part:2B>/w/<instance>                 "awake" set
//	p/<part:2B>/x/c/<created:8B>/<instance>  listing index by creation time → IndexEntry
//	p/<part:2B>/applied                      the index of the partition's raft group applied last (8B)
//	g/<part:2B>/e/<index:8B>                 raft log entry of the partition's group (package replication's encoding)
//	g/<part:2B>/s/<name>                     raft state of the partition's group: "h" hard state, "c" conf state
//
// The raft keys sit apart from p/: a partition's data is what its group
// replicates, its raft log is how, and a scan, a move or a drop of the
// partition's data never touches the log.
//
// Integers are big-endian so byte order is numeric order. Signed values (times,
// task ids) have their sign bit flipped so negative values sort before positive
// ones. Instance ids and reminder names never contain '/', and the instance id is
// always followed by '/' inside i/, so a prefix scan of instance "ab" can never
// reach instance "abc"; p/<part>/i/<instance>/ is also the prefix pebble's bloom
// filters are built over (comparer.go).

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

const sep = '/'

// MaxInstanceIDLen is the longest instance id the key layout accepts.
const MaxInstanceIDLen = 64

// ValidateInstanceID reports whether id may be used as an instance id:
// 1 to 64 characters of [A-Za-z0-9_.:-]. The restriction keeps keys parseable
// (no separator inside an id) and short; ':' is in because Dapr's SDKs name child
// workflows "<parent>:<task>".
func ValidateInstanceID(id string) error { return validateID("instance id", id, MaxInstanceIDLen) }

func validateID(what, id string, maxLen int) error {
	if len(id) == 0 || len(id) > maxLen {
		return fmt.Errorf("storage: %s %q must be 1 to %d characters", what, id, maxLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == ':') {
			return fmt.Errorf("storage: %s %q has %q; only [A-Za-z0-9_.:-] is allowed", what, id, c)
		}
	}
	return nil
}

// MaxRequestIDLen is the longest client request id (Batch.PutClientEvent).
const MaxRequestIDLen = 80

// ValidateRequestID reports whether id may be used as a client request id
// (Batch.PutClientEvent): 1 to MaxRequestIDLen characters of
// [A-Za-z0-9_.:-], as instance ids.
func ValidateRequestID(id string) error { return validateID("request id", id, MaxRequestIDLen) }

// ValidateReminderName reports whether name may be used as a reminder name:
// non-empty printable ASCII without '/', which would make the key ambiguous.
func ValidateReminderName(name string) error {
	if len(name) == 0 {
		return fmt.Errorf("storage: empty reminder name")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c < 0x20 || c > 0x7e || c == sep {
			return fmt.Errorf("storage: reminder name %q has %q; use printable ASCII without '/'", name, c)
		}
	}
	return nil
}

// encodeInt64 encodes v so that byte order matches numeric order.
func encodeInt64(v int64) [8]byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v)^(1<<63))
	return b
}

func decodeInt64(b []byte) int64 {
	return int64(binary.BigEndian.Uint64(b) ^ (1 << 63))
}

// timeNanos maps t to unix nanos. The zero time (and anything before 1678)
// maps to MinInt64 so it sorts first; times past 2262 clamp to MaxInt64.
// time.UnixNano is undefined outside that range, hence the explicit clamp.
func timeNanos(t time.Time) int64 {
	if t.IsZero() || t.Before(minTime) {
		return math.MinInt64
	}
	if t.After(maxTime) {
		return math.MaxInt64
	}
	return t.UnixNano()
}

// nanosTime is the inverse of timeNanos; MinInt64 comes back as the zero time.
func nanosTime(n int64) time.Time {
	if n == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

var (
	minTime = time.Unix(0, math.MinInt64+1)
	maxTime = time.Unix(0, math.MaxInt64)
)

func encodeTime(t time.Time) [8]byte { return encodeInt64(timeNanos(t)) }

func decodeTime(b []byte) time.Time { return nanosTime(decodeInt64(b)) }

// prefixEnd returns the smallest key greater than every key with prefix p.
// Every prefix used here ends in an ASCII byte below 0xff, so incrementing the
// last byte is enough.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil // p is all 0xff: no upper bound
}

// Node-wide keys.

var nodePrefix = []byte("n/")

const (
	metaKeyName     = "meta"
	lowWaterKeyName = LowWaterKey
)

func nodeKey(name string) []byte {
	return append(bytes.Clone(nodePrefix), name...)
}

// Partition keys.

// partPrefix is "p/<part:2B>/".
func partPrefix(part uint16) []byte {
	b := make([]byte, 0, 64)
	b = append(b, 'p', sep)
	b = binary.BigEndian.AppendUint16(b, part)
	return append(b, sep)
}

// instancePrefix is "p/<part>/i/<id>/": every key of one instance starts with it.
func instancePrefix(part uint16, id string) []byte {
	b := partPrefix(part)
	b = append(b, 'i', sep)
	b = append(b, id...)
	return append(b, sep)
}

func instanceKey(part uint16, id string) []byte {
	return append(instancePrefix(part, id), 'm')
}

func historyPrefix(part uint16, id string) []byte {
	return append(instancePrefix(part, id), 'h', sep)
}

func historyKey(part uint16, id string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(historyPrefix(part, id), seq)
}

func activityPrefix(part uint16, id string) []byte {
	return append(instancePrefix(part, id), 'a', sep)
}

func activityKey(part uint16, id string, task int64) []byte {
	k := encodeInt64(task)
	return append(activityPrefix(part, id), k[:]...)
}

func inboxPrefix(part uint16, id string) []byte {
	return append(instancePrefix(part, id), 'q', sep)
}

func inboxKey(part uint16, id string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(inboxPrefix(part, id), seq)
}

func outboxPrefix(part uint16, id string) []byte {
	return append(instancePrefix(part, id), 'o', sep)
}

func outboxKey(part uint16, id string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(outboxPrefix(part, id), seq)
}

func receivedMarkPrefix(part uint16, id string) []byte {
	return append(instancePrefix(part, id), 's', sep)
}

func receivedMarkKey(part uint16, id, sender string) []byte {
	return append(receivedMarkPrefix(part, id), sender...)
}

func clientEventPrefix(part uint16, id string) []byte {
	return append(instancePrefix(part, id), 'e', sep)
}

func clientEventKey(part uint16, id, request string) []byte {
	return append(clientEventPrefix(part, id), request...)
}

func reverseReminderPrefix(part uint16, id string) []byte {
	return append(instancePrefix(part, id), 'r', 'm', sep)
}

func reverseReminderKey(part uint16, id, name string) []byte {
	return append(reverseReminderPrefix(part, id), name...)
}

// seqSuffix parses the trailing 8-byte sequence number of a history or inbox key.
func seqSuffix(key []byte, prefixLen int) (uint64, error) {
	if len(key) != prefixLen+8 {
		return 0, fmt.Errorf("storage: malformed sequence key %q", key)
	}
	return binary.BigEndian.Uint64(key[prefixLen:]), nil
}

// Reminders by due time.

func reminderRangePrefix(part uint16) []byte {
	return append(partPrefix(part), 'r', sep)
}

// reminderDueBound is the first key of reminders due at or after t.
func reminderDueBound(part uint16, t time.Time) []byte {
	d := encodeTime(t)
	return append(reminderRangePrefix(part), d[:]...)
}

// reminderDueRange bounds the keys of partition part's reminders with
// from ≤ due < to; a zero to is unbounded.
func reminderDueRange(part uint16, from, to time.Time) (lower, upper []byte) {
	if to.IsZero() {
		return reminderDueBound(part, from), prefixEnd(reminderRangePrefix(part))
	}
	return reminderDueBound(part, from), reminderDueBound(part, to)
}

func reminderKey(part uint16, due time.Time, id, name string) []byte {
	b := reminderDueBound(part, due)
	b = append(b, sep)
	b = append(b, id...)
	b = append(b, sep)
	return append(b, name...)
}

// parseReminderKey splits a key built by reminderKey.
func parseReminderKey(key []byte) (part uint16, due time.Time, id, name string, err error) {
	// p / PP / r / DDDDDDDD / id / name
	const head = 2 + 2 + 1 + 2 // "p/" part "/" "r/"
	if len(key) < head+8+1+1+1+1 || key[0] != 'p' || key[1] != sep || key[4] != sep || key[5] != 'r' || key[6] != sep || key[head+8] != sep {
		return 0, time.Time{}, "", "", fmt.Errorf("storage: malformed reminder key %q", key)
	}
	part = binary.BigEndian.Uint16(key[2:4])
	due = decodeTime(key[head : head+8])
	rest := key[head+9:]
	i := bytes.IndexByte(rest, sep)
	if i <= 0 || i == len(rest)-1 {
		return 0, time.Time{}, "", "", fmt.Errorf("storage: malformed reminder key %q", key)
	}
	return part, due, string(rest[:i]), string(rest[i+1:]), nil
}

// Awake set.

func awakePrefix(part uint16) []byte {
	return append(partPrefix(part), 'w', sep)
}

func awakeKey(part uint16, id string) []byte {
	return append(awakePrefix(part), id...)
}

// Raft logs.

// appliedKey holds a replicated partition's applied index: under p/<part>/,
// it is written in the batch that applies the entry and travels with the
// partition's data.
func appliedKey(part uint16) []byte {
	return append(partPrefix(part), "applied"...)
}

func raftGroupPrefix(part uint16) []byte {
	b := make([]byte, 0, 24)
	b = append(b, 'g', sep)
	b = binary.BigEndian.AppendUint16(b, part)
	return append(b, sep)
}

func raftEntryPrefix(part uint16) []byte {
	return append(raftGroupPrefix(part), 'e', sep)
}

func raftEntryKey(part uint16, index uint64) []byte {
	return binary.BigEndian.AppendUint64(raftEntryPrefix(part), index)
}

func raftStateKey(part uint16, name string) []byte {
	b := append(raftGroupPrefix(part), 's', sep)
	return append(b, name...)
}

// Listing index by creation time.

func createdIndexPrefix(part uint16) []byte {
	return append(partPrefix(part), 'x', sep, 'c', sep)
}

// createdIndexBound is the first index key created at or after t.
func createdIndexBound(part uint16, t time.Time) []byte {
	c := encodeTime(t)
	return append(createdIndexPrefix(part), c[:]...)
}

func createdIndexKey(part uint16, created time.Time, id string) []byte {
	b := createdIndexBound(part, created)
	b = append(b, sep)
	return append(b, id...)
}

// parseCreatedIndexKey splits a key built by createdIndexKey.
func parseCreatedIndexKey(key []byte) (part uint16, created time.Time, id string, err error) {
	const head = 2 + 2 + 1 + 4 // "p/" part "/" "x/c/"
	if len(key) < head+8+2 || key[0] != 'p' || key[4] != sep || !bytes.Equal(key[5:head], []byte("x/c/")) || key[head+8] != sep {
		return 0, time.Time{}, "", fmt.Errorf("storage: malformed index key %q", key)
	}
	return binary.BigEndian.Uint16(key[2:4]), decodeTime(key[head : head+8]), string(key[head+9:]), nil
}
