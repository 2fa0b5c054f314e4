package relaytest

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) { os.Exit(RunTrustingSinkCertificate(m)) }
