package worker

import (
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/exam-relay/relay/relay/relaytest"
)

// TestMain keeps go-redis's own log of a stopped server out of the output.
func TestMain(m *testing.M) {
	redis.SetLogger(relaytest.QuietRedisLogger{})
	os.Exit(m.Run())
}
