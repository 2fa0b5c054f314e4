package relay

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/hibiken/asynq"
)

// maskEmail keeps enough of an address to tell a support ticket which
// student it was about, not enough to be personal data in a log.
func maskEmail(addr string) string {
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || local == "" {
		return "***"
	}
	return local[:1] + "***@" + domain
}

// AsynqLogger sends asynq's own messages to log.
func AsynqLogger(log *slog.Logger) asynq.Logger { return asynqLogger{log} }

type asynqLogger struct{ log *slog.Logger }

func (l asynqLogger) Debug(args ...any) { l.log.Debug(fmt.Sprint(args...)) }
func (l asynqLogger) Info(args ...any)  { l.log.Info(fmt.Sprint(args...)) }
func (l asynqLogger) Warn(args ...any)  { l.log.Warn(fmt.Sprint(args...)) }
func (l asynqLogger) Error(args ...any) { l.log.Error(fmt.Sprint(args...)) }
func (l asynqLogger) Fatal(args ...any) { l.log.Error(fmt.Sprint(args...)) }

// RedisLogger sends go-redis's own messages (failed dials while Redis is
// away) to Log, as JSON like everything else.
type RedisLogger struct{ Log *slog.Logger }

func (l RedisLogger) Printf(_ context.Context, format string, args ...any) {
	l.Log.Warn(fmt.Sprintf(format, args...), "component", "go-redis")
}
