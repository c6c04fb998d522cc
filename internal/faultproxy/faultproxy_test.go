package faultproxy

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestFaults(t *testing.T) {
	var hits atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, strings.Repeat("x", 2000))
	}))
	defer backend.Close()
	p, err := Start(backend.URL, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	get := func(timeout time.Duration) (int, string, error) {
		c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get(p.URL + "/bucket/key")
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	tests := []struct {
		name       string
		f          Faults
		wantStatus int    // 0: want a transport error
		wantBody   string // substring
		wantHit    bool   // the backend saw the request
		minTook    time.Duration
	}{
		{"clean", Faults{}, 200, "xxxx", true, 0},
		{"latency", Faults{Latency: 300 * time.Millisecond}, 200, "xxxx", true, 300 * time.Millisecond},
		{"503", Faults{ErrorRate: 1}, 503, "<Code>ServiceUnavailable</Code>", false, 0},
		{"500", Faults{ErrorRate: 1, ErrorStatus: 500}, 500, "<Code>InternalError</Code>", false, 0},
		{"reset", Faults{ResetRate: 1}, 0, "", false, 0},
		{"lost answer", Faults{LostAnswerRate: 1}, 0, "", true, 0},
		{"outage", Faults{Outage: true}, 0, "", false, 0},
		{"cut", Faults{CutRate: 1}, 0, "", true, 0},
		{"trickle", Faults{TrickleBPS: 4000}, 200, "xxxx", true, 300 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.Set(tt.f)
			before := hits.Load()
			start := time.Now()
			status, body, err := get(10 * time.Second)
			took := time.Since(start)
			if tt.wantStatus == 0 {
				if err == nil {
					t.Fatalf("got status %d, want a transport error", status)
				}
			} else if err != nil || status != tt.wantStatus || !strings.Contains(body, tt.wantBody) {
				t.Fatalf("got %d %q %v, want %d with %q", status, body, err, tt.wantStatus, tt.wantBody)
			}
			if hit := hits.Load() > before; hit != tt.wantHit {
				t.Errorf("backend hit %v, want %v", hit, tt.wantHit)
			}
			if took < tt.minTook {
				t.Errorf("took %v, want at least %v", took, tt.minTook)
			}
		})
	}

	// 429/SlowDown answers, and a hang released by Set.
	p.Set(Faults{ThrottleRate: 1})
	seen := map[int]bool{}
	for range 20 {
		status, body, err := get(5 * time.Second)
		if err != nil || !strings.Contains(body, "SlowDown") && !strings.Contains(body, "TooManyRequests") {
			t.Fatalf("throttle: %d %q %v", status, body, err)
		}
		seen[status] = true
	}
	if !seen[503] || !seen[429] {
		t.Errorf("throttle statuses seen %v, want 503 and 429", seen)
	}
	p.Set(Faults{Hang: true})
	if _, _, err := get(200 * time.Millisecond); err == nil || !errors.Is(err, err) {
		t.Fatalf("hang: got no error")
	}
	done := make(chan int)
	go func() { s, _, _ := get(10 * time.Second); done <- s }()
	time.Sleep(100 * time.Millisecond)
	p.Set(Faults{})
	if s := <-done; s != 200 {
		t.Errorf("after the hang ended: status %d", s)
	}
	if c := p.Counts(); c.Resets != 1 || c.LostAnswers != 1 || c.Errors != 2 || c.Throttled != 20 || c.Cuts != 1 {
		t.Errorf("counts %+v", c)
	}
}
