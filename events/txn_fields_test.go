package events

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/s3"
)

func TestTxnSourceAndKeys(t *testing.T) {
	tests := []struct {
		ev         s3.RequestEvent
		source     string
		keys       []string
		hasSource  bool
		hasKeyList bool
	}{
		{s3.RequestEvent{Operation: "CopyObject", Source: "a/b\x00c", Key: "k"}, "a/b\x00c", nil, true, false},
		{s3.RequestEvent{Operation: "DeleteObjects", Keys: []string{"x", "y\n\"z"}}, "", []string{"x", "y\n\"z"}, false, true},
		{s3.RequestEvent{Operation: "PutObject", Key: "k"}, "", nil, false, false},
	}
	for _, tc := range tests {
		tc.ev.Time = time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
		line := appendTxn(nil, newTxnRecord(&tc.ev))
		var got map[string]any
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatalf("%s: %q is not JSON: %v", tc.ev.Operation, line, err)
		}
		if _, ok := got["source"]; ok != tc.hasSource || (ok && got["source"] != tc.source) {
			t.Errorf("%s: source %v", tc.ev.Operation, got["source"])
		}
		keys, ok := got["keys"].([]any)
		if ok != tc.hasKeyList || len(keys) != len(tc.keys) {
			t.Errorf("%s: keys %v", tc.ev.Operation, got["keys"])
		}
		for i := range keys {
			if keys[i] != tc.keys[i] {
				t.Errorf("%s: key %d = %q", tc.ev.Operation, i, keys[i])
			}
		}
	}
}
