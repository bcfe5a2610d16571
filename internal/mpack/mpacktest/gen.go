package mpacktest

import (
	"bytes"
	"fmt"
	"math"
	"math/rand"
	"strings"
	"time"
)

// Generators of random values for codec tests, weighted towards the cases an
// encoder gets wrong: zero and empty values, and lengths and magnitudes at the
// limits of each msgpack form.

// String returns a string of a random interesting length: empty, around
// the fixstr, str8 and str16 limits, ASCII or not.
func String(rng *rand.Rand) string {
	switch rng.Intn(10) {
	case 0, 1, 2:
		return ""
	case 3:
		return "name-" + fmt.Sprint(rng.Intn(1000))
	case 4:
		return strings.Repeat("é", rng.Intn(40)) // 2 bytes a rune: across 31/32
	case 5:
		return "日本語" + strings.Repeat("x", 240+rng.Intn(30)) // across 255/256
	case 6:
		if rng.Intn(10) == 0 {
			return strings.Repeat("y", 65530+rng.Intn(12)) // across 65535/65536
		}
		return "🙂"
	default:
		return fmt.Sprintf("%x", rng.Uint64())
	}
}

// Bytes returns nil, empty or JSON-ish bytes of a random interesting length
// (around the bin8 and bin16 limits).
func Bytes(rng *rand.Rand) []byte {
	switch rng.Intn(10) {
	case 0, 1:
		return nil
	case 2:
		return []byte{}
	case 3:
		return bytes.Repeat([]byte("a"), 250+rng.Intn(10))
	case 4:
		if rng.Intn(10) == 0 {
			return bytes.Repeat([]byte("b"), 65530+rng.Intn(12+rng.Intn(10000)))
		}
		return []byte("null")
	default:
		return fmt.Appendf(nil, `{"n":%d}`, rng.Int63())
	}
}

// Int returns a random interesting int64: 0, small, negative, at the limits.
func Int(rng *rand.Rand) int64 {
	switch rng.Intn(8) {
	case 0, 1:
		return 0
	case 2:
		return int64(rng.Intn(200))
	case 3:
		return -int64(rng.Intn(200))
	case 4:
		return []int64{math.MaxInt64, math.MinInt64, math.MaxInt32 + 1, math.MinInt32 - 1}[rng.Intn(4)]
	default:
		return rng.Int63() >> rng.Intn(63) * int64(1-2*rng.Intn(2))
	}
}

func Uint(rng *rand.Rand) uint64 {
	switch rng.Intn(6) {
	case 0, 1:
		return 0
	case 2:
		return uint64(rng.Intn(300))
	case 3:
		return []uint64{math.MaxUint64, 1 << 63, math.MaxUint32, math.MaxUint32 + 1}[rng.Intn(4)]
	default:
		return rng.Uint64() >> rng.Intn(64)
	}
}

// Time returns a random time: zero, whole seconds, with nanoseconds, before
// 1970, after 2106 and 2514 (the 4 and 8 byte timestamp limits), in a random
// location.
func Time(rng *rand.Rand) time.Time {
	var t time.Time
	switch rng.Intn(8) {
	case 0, 1:
		return time.Time{}
	case 2:
		t = time.Unix(rng.Int63n(1<<32), 0)
	case 3:
		t = time.Unix(rng.Int63n(1<<34), rng.Int63n(1e9))
	case 4:
		t = time.Unix(-rng.Int63n(1<<36), rng.Int63n(1e9)) // before 1970
	case 5:
		t = time.Unix(1<<34+rng.Int63n(1<<36), rng.Int63n(2)*rng.Int63n(1e9)) // after 2514
	case 6:
		t = time.Time{}.Add(time.Duration(rng.Intn(3))) // about the zero time
	default:
		t = time.Date(2026, 1, 2, 3, 4, 5, rng.Intn(1e9), time.UTC)
	}
	return t.In([]*time.Location{time.UTC, time.Local, time.FixedZone("x", -7*3600)}[rng.Intn(3)])
}

func Float(rng *rand.Rand) float64 {
	switch rng.Intn(6) {
	case 0:
		return 0
	case 1:
		return []float64{math.Copysign(0, -1), math.NaN(), math.Inf(1), math.SmallestNonzeroFloat64}[rng.Intn(4)]
	case 2:
		return float64(rng.Intn(4))
	default:
		return rng.NormFloat64() * 10
	}
}
