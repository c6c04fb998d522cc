package remote_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/drivertest"
)

// conformance runs the driver conformance suite on s, each subtest on a
// fresh prefix of one bucket.
func conformance(t *testing.T, s server) {
	b := s.bucket(t)
	var n atomic.Int64
	drivertest.Run(t, func(t *testing.T) driver.Driver {
		return open(t, s.config("", b, fmt.Sprintf("c%d/drive", n.Add(1))))
	})
}

func TestConformanceVaultd(t *testing.T) { conformance(t, startVaultd(t)) }

func TestConformanceMinIO(t *testing.T) { conformance(t, startMinIO(t)) }
