package sigv4_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/s3/sigv4"
)

// TestReview27pPooledScratchConcurrent: many signature checks at once,
// valid and tampered, header-signed and presigned, of requests of every
// size around scratchMax, on the pooled scratches (4649234, 0f59014):
// each verdict is its own request's, whatever ran on the scratch before.
func TestReview27pPooledScratchConcurrent(t *testing.T) {
	at := time.Now().UTC()
	type tc struct {
		r    *sigv4.Request
		good bool
	}
	// Each goroutine its own requests (the test's adapt trims header
	// values in place).
	build := func() []tc {
		var cases []tc
		for i := range 24 {
			q := fmt.Sprintf("prefix=%s&i=%d", strings.Repeat("a%2Fb", i*60), i) // some past 4 KiB
			req := newRequest(t, "GET", "/bucket/key-"+fmt.Sprint(i), q, nil)
			awsSign(t, req, testSecret, "UNSIGNED-PAYLOAD", at)
			r, _ := wire(t, req)
			cases = append(cases, tc{r, true})
			bad := newRequest(t, "GET", "/bucket/key-"+fmt.Sprint(i), q, nil)
			awsSign(t, bad, testSecret, "UNSIGNED-PAYLOAD", at)
			auth := bad.Header.Get("Authorization")
			// The last signature digit changed: a near miss.
			last := auth[len(auth)-1]
			flip := byte('0')
			if last == '0' {
				flip = '1'
			}
			bad.Header.Set("Authorization", auth[:len(auth)-1]+string(flip))
			br, _ := wire(t, bad)
			cases = append(cases, tc{br, false})
			pre := awsPresign(t, newRequest(t, "GET", "/bucket/p-"+fmt.Sprint(i), q, nil), 600, at)
			pr, _ := wire(t, pre)
			cases = append(cases, tc{pr, true})
			// A presigned URL with the other key's... same URL, another path.
			tam := *pr
			tam.RawPath = "/bucket/other-" + fmt.Sprint(i)
			cases = append(cases, tc{&tam, false})
		}
		return cases
	}
	var wg sync.WaitGroup
	for g := range 8 {
		cases := build()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range 40 {
				c := cases[(g*7+n*5)%len(cases)]
				_, err := sigv4.Verify(context.Background(), c.r, creds, at)
				if c.good && err != nil {
					t.Errorf("valid request refused: %v", err)
				}
				if !c.good && !errors.Is(err, sigv4.ErrSignatureDoesNotMatch) {
					t.Errorf("tampered request: err = %v, want ErrSignatureDoesNotMatch", err)
				}
			}
		}()
	}
	wg.Wait()
}
