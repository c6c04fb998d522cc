package drivertest

import (
	"testing"

	"github.com/vaultaire/vaultaire/driver"
)

func TestMem(t *testing.T) {
	Run(t, func(t *testing.T) driver.Driver { return &Mem{} })
}

func TestMemInfo(t *testing.T) {
	m := &Mem{MemID: "m1", ClusterID: "c"}
	info, err := m.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != "m1" || info.ClusterID != "c" {
		t.Errorf("Info() = %+v, want ID m1, ClusterID c", info)
	}
	info, err = new(Mem).Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != "mem" {
		t.Errorf("zero Mem: Info().ID = %q, want mem", info.ID)
	}
}
