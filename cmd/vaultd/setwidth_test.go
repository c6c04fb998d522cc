package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vaultaire/vaultaire/cluster"
	"github.com/vaultaire/vaultaire/s3"
)

// TestClusterControlWidth: the admin API's erasure operation takes a
// width without a policy (probe F8 of session 17: K+M was required),
// keeping the default policy, and "default_width" returns to the width
// that follows the drive count; widths out of range are a 400 that says
// which widths are taken.
func TestClusterControlWidth(t *testing.T) {
	ctx := t.Context()
	store, err := cluster.Open(ctx, cluster.Config{Dir: filepath.Join(t.TempDir(), "raft"), NodeID: "n1", RaftAddr: "127.0.0.1:1", Bootstrap: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var ds []cluster.MemberDrive
	for i := range 6 {
		ds = append(ds, cluster.MemberDrive{ID: fmt.Sprintf("n1-d%d", i), Class: "local"})
	}
	if err := store.RegisterNode(ctx, cluster.NodeInfo{Name: "n1", Drives: ds}); err != nil {
		t.Fatal(err)
	}
	admin := statusAdmin{adminAdapter: adminAdapter{store}, clustered: true}
	first := store.Map()
	for _, tc := range []struct {
		body      string
		width     int
		widthSet  bool
		policySet bool
	}{
		{`{"width": 8}`, 8, true, false},
		{`{"default_width": true}`, 1, false, false},
		{`{"data": 2, "parity": 2, "width": 4}`, 4, true, true},
		{`{"width": 0, "default_width": true}`, 1, false, true},
	} {
		got, err := admin.ClusterControl(ctx, "erasure", []byte(tc.body))
		if err != nil {
			t.Fatalf("erasure %s: %v", tc.body, err)
		}
		ms := got.(cluster.MapStatus)
		if ms.Width != tc.width || ms.WidthSet != tc.widthSet || ms.PolicySet != tc.policySet {
			t.Errorf("erasure %s: %+v; want width %d (set %v), policy set %v", tc.body, ms, tc.width, tc.widthSet, tc.policySet)
		}
	}
	if m := store.Map(); m.Epoch != first.Epoch+4 {
		t.Errorf("map epoch %d after four changes from %d, want %d", m.Epoch, first.Epoch, first.Epoch+4)
	}
	for _, tc := range []struct{ body, want string }{
		{`{"width": 17}`, "stripe width 17 not in 1..16"},
		{`{"width": -1}`, "stripe width -1 not in 1..16"},
		{`{}`, "neither an erasure policy nor a stripe width"},
	} {
		_, err := admin.ClusterControl(ctx, "erasure", []byte(tc.body))
		var se *s3.Error
		if !errors.As(err, &se) || se.Status != http.StatusBadRequest || !strings.Contains(se.Message, tc.want) {
			t.Errorf("erasure %s: %v; want a 400 saying %q", tc.body, err, tc.want)
		}
	}
}

// TestSetErasureCommand: `vaultd cluster set-erasure` sends a width
// alone, "auto" and 0 as the default width, and a policy with or without
// one; it prints who chose the policy and the width.
func TestSetErasureCommand(t *testing.T) {
	var (
		mu   sync.Mutex // guards body
		body []byte
	)
	node := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		body = b
		mu.Unlock()
		var req erasureRequest
		json.Unmarshal(b, &req)
		json.NewEncoder(w).Encode(cluster.MapStatus{Epoch: 7, Policy: "4+2", PolicySet: req.Data > 0, Width: max(req.Width, 1), WidthSet: req.Width > 0, PGs: 256, Drives: 6})
	}))
	defer node.Close()
	getenv := func(k string) string {
		return map[string]string{"VAULT_ROOT_ACCESS_KEY": "ROOTKEY", "VAULT_ROOT_SECRET_KEY": "rootsecret1"}[k]
	}
	for _, tc := range []struct {
		args     []string
		want     erasureRequest
		wantText string
	}{
		{[]string{"--width", "8"}, erasureRequest{Width: 8}, "map epoch 7: erasure 4+2 (follows the drive count), stripe width 8 (set by the operator)"},
		{[]string{"--width", "auto"}, erasureRequest{DefaultWidth: true}, "stripe width 1 (follows the drive count)"},
		{[]string{"--width", "0"}, erasureRequest{DefaultWidth: true}, "stripe width 1 (follows the drive count)"},
		{[]string{"4+2"}, erasureRequest{Data: 4, Parity: 2}, "erasure 4+2 (set by the operator)"},
		{[]string{"--width", "12", "4+2"}, erasureRequest{Data: 4, Parity: 2, Width: 12}, "stripe width 12 (set by the operator)"},
		{[]string{"--width", "-1"}, erasureRequest{Width: -1}, ""}, // the node refuses it
	} {
		var out, errb bytes.Buffer
		args := append([]string{"cluster", "set-erasure"}, tc.args...)
		if err := run(t.Context(), append(args, "--endpoint", node.URL), getenv, &out, &errb); err != nil {
			t.Fatalf("vaultd %s: %v (%s)", strings.Join(args, " "), err, errb.String())
		}
		mu.Lock()
		var got erasureRequest
		err := json.Unmarshal(body, &got)
		mu.Unlock()
		if err != nil || got != tc.want {
			t.Errorf("vaultd %s sent %+v (%v), want %+v", strings.Join(args, " "), got, err, tc.want)
		}
		if !strings.Contains(out.String(), tc.wantText) {
			t.Errorf("vaultd %s printed %q, want %q", strings.Join(args, " "), out.String(), tc.wantText)
		}
	}
	var out, errb bytes.Buffer
	if err := run(t.Context(), []string{"cluster", "set-erasure", "--width", "wide", "--endpoint", node.URL}, getenv, &out, &errb); err == nil || !strings.Contains(err.Error(), "want 1 to 16, or auto") {
		t.Errorf("--width wide: %v, want an error saying what --width takes", err)
	}
}
