package s3_test

// Session 24 review tests (notes/REVIEW24.md).

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/s3"
)

// TestReview24PostFormStallInOneRead (REVIEW24 R1, on 34fc030's F6 fix):
// headLimit checks its deadline (the header timeout) only when a Read
// begins, and the read under it still waits as long as the body rate
// window allows. With the defaults' proportions (header timeout 10 s,
// window 30 s, 32 KiB) a client that sends the start of one form field and
// then nothing keeps its connection for a whole window, three header
// timeouts, without ever being authenticated: the attacker's trickle
// was only replaced by a stall.
func TestReview24PostFormStallInOneRead(t *testing.T) {
	e := startServerWith(t, func(c *s3.Config) {
		c.HeaderTimeout = time.Second
		c.BodyRateWindow = 6 * time.Second
		c.BodyRateMin = 32 << 10
	})
	conn := dial(t, e.endpoint)
	head := "POST /nobody-s-bucket HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=BB\r\nTransfer-Encoding: chunked\r\n\r\n"
	chunk := func(s string) string { return fmt.Sprintf("%x\r\n%s\r\n", len(s), s) }
	start := time.Now()
	if _, err := io.WriteString(conn, head+chunk("--BB\r\nContent-Disposition: form-data; name=\"x-ignore\"\r\n\r\naaaa")); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	_, err := conn.Read(b[:])
	took := time.Since(start)
	if errors.Is(err, os.ErrDeadlineExceeded) || took > 3*time.Second {
		t.Fatalf("an unauthenticated form that stalls after its first field's start held the connection for %v (read: %v): want it answered or closed within about the header timeout (1s), not a body rate window (6s)", took.Round(100*time.Millisecond), err)
	}
}

// TestReview24PostFormTimeoutCode (REVIEW24 R2, low): a form whose fields
// are still arriving at the header timeout fails, as headLimit means it
// to, with ErrRequestTimeout, but readPostFields wraps every read error in
// errMalformedPOST and the client is told MalformedPOSTRequest: its own
// form is blamed for the server's deadline (and a client that retries
// RequestTimeout, as the SDKs do, does not).
func TestReview24PostFormTimeoutCode(t *testing.T) {
	e := startServerWith(t, func(c *s3.Config) {
		c.HeaderTimeout = 500 * time.Millisecond
		c.BodyRateWindow = 5 * time.Second
		c.BodyRateMin = 1
	})
	conn := dial(t, e.endpoint)
	head := "POST /nobody-s-bucket HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=BB\r\nTransfer-Encoding: chunked\r\n\r\n"
	chunk := func(s string) string { return fmt.Sprintf("%x\r\n%s\r\n", len(s), s) }
	if _, err := io.WriteString(conn, head+chunk("--BB\r\nContent-Disposition: form-data; name=\"x-ignore\"\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	resp := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(conn)
		resp <- string(b)
	}()
	for start := time.Now(); time.Since(start) < 3*time.Second; {
		time.Sleep(100 * time.Millisecond)
		if _, err := io.WriteString(conn, chunk("aaaaaaaaaa")); err != nil {
			break
		}
	}
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	got := <-resp
	if !strings.Contains(got, "<Code>RequestTimeout</Code>") {
		t.Fatalf("form fields still trickling at the header timeout: %.400q, want RequestTimeout", got)
	}
}
