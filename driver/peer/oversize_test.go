package peer

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
)

// TestClientOversizedResponse: a peer (a broken one, or something else
// listening on its address) answering with a body longer than the call's
// largest legitimate response makes the call fail with driver.ErrCorrupt
// rather than be buffered whole, whether it declares the length or
// streams it.
func TestClientOversizedResponse(t *testing.T) {
	for _, tc := range []struct {
		name     string
		size     int64
		declared bool
		call     func(c *Client) error
	}{
		{"info/streamed", smallResponse + 1, false, func(c *Client) error { _, err := c.Info(t.Context()); return err }},
		{"delete record/declared", smallResponse + 1, true, func(c *Client) error { return c.DeleteRecord(t.Context(), "k", driver.Version{}) }},
		{"get record/streamed", recordResponse + 1, false, func(c *Client) error { _, err := c.GetRecord(t.Context(), "k"); return err }},
		{"get record/declared", recordResponse + 1, true, func(c *Client) error { _, err := c.GetRecord(t.Context(), "k"); return err }},
		{"list records/streamed", listResponse + 1, false, func(c *Client) error { _, err := c.ListRecords(t.Context(), "", "", 10); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set(hdrVersion, driver.Version{1}.String())
				if tc.declared {
					w.Header().Set("Content-Length", strconv.FormatInt(tc.size, 10))
				}
				w.WriteHeader(http.StatusOK)
				buf := make([]byte, 64<<10)
				for left := tc.size; left > 0; {
					n, err := w.Write(buf[:min(left, int64(len(buf)))])
					left -= int64(n)
					if err != nil {
						return
					}
				}
			}))
			t.Cleanup(srv.Close)
			// Generous deadlines: the call must fail on the size, not on
			// the time a 64 MiB body takes under -race on a loaded machine.
			c, err := NewClient(ClientConfig{Addr: srv.Listener.Addr().String(), Drive: testDrive, Secret: testSecret,
				CallTimeout: 2 * time.Minute, ProgressTimeout: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.CloseIdleConnections)
			if err := tc.call(c); !errors.Is(err, driver.ErrCorrupt) {
				t.Errorf("%d-byte response: %v, want driver.ErrCorrupt", tc.size, err)
			}
		})
	}
}
