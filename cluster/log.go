package cluster

import (
	"context"
	"log/slog"
	"strings"
)

// memberlistLog routes memberlist's log.Logger lines ("[WARN] memberlist: ...")
// to slog at debug: memberlist logs routine events of a healthy cluster at ERR
// (a probe to a departed node failing, a stream from another cluster
// discarded), which would be noise at any higher level. Its own level is kept as
// an attribute.
type memberlistLog struct{ l *slog.Logger }

func (w memberlistLog) Write(p []byte) (int, error) {
	if !w.l.Enabled(context.Background(), slog.LevelDebug) {
		return len(p), nil
	}
	line := strings.TrimSpace(string(p))
	level := ""
	if strings.HasPrefix(line, "[") {
		if i := strings.IndexByte(line, ']'); i > 0 {
			level, line = line[1:i], strings.TrimSpace(line[i+1:])
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	w.l.Debug(line, "from", "memberlist", "level_memberlist", level)
	return len(p), nil
}
