package email

import (
	"os"
	"testing"

	"github.com/exam-relay/relay/relay/relaytest"
)

func TestMain(m *testing.M) { os.Exit(relaytest.RunTrustingSinkCertificate(m)) }
