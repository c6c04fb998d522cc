package placement

import (
	"errors"
	"strings"
	"testing"
)

func TestDefaultPolicy(t *testing.T) {
	want := map[int]Policy{
		1: {1, 0}, 2: {1, 1}, 3: {1, 1}, 4: {2, 2}, 5: {2, 2}, 6: {4, 2}, 7: {4, 2},
		8: {4, 4}, 9: {5, 4}, 10: {6, 4}, 11: {7, 4}, 12: {8, 4}, 13: {9, 4},
		14: {10, 4}, 15: {11, 4}, 16: {12, 4},
	}
	for n := 17; n <= 40; n++ {
		want[n] = Policy{12, 4}
	}
	for n := -1; n <= 40; n++ {
		got, err := DefaultPolicy(n)
		if n < 1 {
			if !errors.Is(err, ErrTooFewDrives) || !strings.HasPrefix(err.Error(), "placement: ") {
				t.Errorf("DefaultPolicy(%d) error = %v, want ErrTooFewDrives", n, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("DefaultPolicy(%d) error: %v", n, err)
			continue
		}
		if got != want[n] {
			t.Errorf("DefaultPolicy(%d) = %v, want %v", n, got, want[n])
		}
		if err := got.Validate(); err != nil {
			t.Errorf("DefaultPolicy(%d) = %v: invalid: %v", n, got, err)
		}
		if got.SetSize() > n {
			t.Errorf("DefaultPolicy(%d) = %v: set size %d > %d drives", n, got, got.SetSize(), n)
		}
	}
}

func TestPolicyQuorums(t *testing.T) {
	tests := []struct {
		p                 Policy
		size, write, read int
	}{
		{Policy{1, 0}, 1, 1, 1},
		{Policy{1, 1}, 2, 2, 1},
		{Policy{2, 1}, 3, 2, 2},
		{Policy{2, 2}, 4, 3, 2},
		{Policy{4, 2}, 6, 4, 4},
		{Policy{4, 4}, 8, 5, 4},
		{Policy{6, 4}, 10, 6, 6},
		{Policy{12, 4}, 16, 12, 12},
		{Policy{8, 8}, 16, 9, 8},
		{Policy{1, 2}, 3, 3, 1}, // more parity than data: write quorum m+1 overlaps read quorum k
		{Policy{2, 5}, 7, 6, 2},
	}
	for _, tt := range tests {
		if got := tt.p.SetSize(); got != tt.size {
			t.Errorf("%v.SetSize() = %d, want %d", tt.p, got, tt.size)
		}
		if got := tt.p.WriteQuorum(); got != tt.write {
			t.Errorf("%v.WriteQuorum() = %d, want %d", tt.p, got, tt.write)
		}
		if got := tt.p.ReadQuorum(); got != tt.read {
			t.Errorf("%v.ReadQuorum() = %d, want %d", tt.p, got, tt.read)
		}
	}
}

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		p  Policy
		ok bool
	}{
		{Policy{1, 0}, true},
		{Policy{1, 1}, true},
		{Policy{12, 4}, true},
		{Policy{256, 0}, true},
		{Policy{255, 1}, true},
		{Policy{128, 128}, true},
		{Policy{0, 0}, false},
		{Policy{0, 2}, false},
		{Policy{-1, 2}, false},
		{Policy{4, -1}, false},
		{Policy{257, 0}, false},
		{Policy{255, 2}, false},
		{Policy{1, 256}, false},
		{Policy{1 << 62, 1 << 62}, false}, // k+m overflows
		{Policy{1, 1<<63 - 1}, false},
	}
	for _, tt := range tests {
		err := tt.p.Validate()
		if got := err == nil; got != tt.ok {
			t.Errorf("%v.Validate() = %v, want ok = %v", tt.p, err, tt.ok)
			continue
		}
		if err != nil && (!errors.Is(err, ErrInvalidPolicy) || !strings.HasPrefix(err.Error(), "placement: ")) {
			t.Errorf("%v.Validate() = %q, want ErrInvalidPolicy prefixed \"placement: \"", tt.p, err)
		}
	}
}

func TestPolicyString(t *testing.T) {
	tests := []struct {
		p    Policy
		want string
	}{
		{Policy{4, 2}, "4+2"},
		{Policy{1, 0}, "1+0"},
		{Policy{12, 4}, "12+4"},
		{Policy{}, "0+0"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.p, got, tt.want)
		}
	}
}

// TestDefaultWidth: no striping while one set spans half the drives or
// more; then as many PGs as disjoint sets fit, up to MaxWidth.
func TestDefaultWidth(t *testing.T) {
	for _, tc := range []struct {
		n    int
		p    Policy
		want int
	}{
		{1, Policy{1, 0}, 0}, {3, Policy{1, 1}, 0}, {4, Policy{1, 1}, 2}, {6, Policy{4, 2}, 0},
		{12, Policy{4, 2}, 2}, {16, Policy{12, 4}, 0}, {31, Policy{12, 4}, 0}, {32, Policy{12, 4}, 2},
		{48, Policy{12, 4}, 3}, {255, Policy{12, 4}, 15}, {256, Policy{12, 4}, 16}, {12000, Policy{12, 4}, MaxWidth},
		{10, Policy{0, 0}, 0},
	} {
		if got := DefaultWidth(tc.n, tc.p); got != tc.want {
			t.Errorf("DefaultWidth(%d, %v) = %d, want %d", tc.n, tc.p, got, tc.want)
		}
	}
	// Under the default policy: none up to 31 drives.
	for n := 1; n <= 40; n++ {
		p, _ := DefaultPolicy(n)
		if got, want := DefaultWidth(n, p), map[bool]int{true: 0, false: 2}[n < 32]; got != want {
			t.Errorf("DefaultWidth(%d, DefaultPolicy) = %d, want %d", n, got, want)
		}
	}
}
