package peer

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"
)

// sliceWriter records the slices it is given (where they lie, and what
// they held then).
type sliceWriter struct {
	got   [][]byte
	where []*byte
	err   error // returned after the first write
}

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.got = append(w.got, bytes.Clone(p))
	w.where = append(w.where, &p[0])
	if w.err != nil {
		return len(p) / 2, w.err
	}
	return len(p), nil
}

// TestBodyPipeWriteToDoesNotCopy: WriteTo hands the transport the very
// slices the writer wrote, ends cleanly at closeWrite(nil), and Write
// returns only once its slice was written (the writer reuses it at once).
func TestBodyPipeWriteToDoesNotCopy(t *testing.T) {
	p := newBodyPipe()
	bufs := [][]byte{bytes.Repeat([]byte{1}, 1000), bytes.Repeat([]byte{2}, 300)}
	want := [][]byte{bytes.Clone(bufs[0]), bytes.Clone(bufs[1])}
	go func() {
		for _, b := range bufs {
			if n, err := p.Write(b); n != len(b) || err != nil {
				t.Errorf("Write: %d, %v", n, err)
			}
			for i := range b {
				b[i] = 0xff
			}
		}
		p.closeWrite(nil)
	}()
	w := &sliceWriter{}
	n, err := p.WriteTo(w)
	if err != nil || n != 1300 {
		t.Fatalf("WriteTo: %d, %v; want 1300, nil", n, err)
	}
	if len(w.got) != 2 || w.where[0] != &bufs[0][0] || w.where[1] != &bufs[1][0] {
		t.Fatalf("WriteTo wrote %d slices, not the writer's own", len(w.got))
	}
	if !bytes.Equal(w.got[0], want[0]) || !bytes.Equal(w.got[1], want[1]) {
		t.Error("the transport saw bytes the writer changed after its Write returned")
	}
	select {
	case <-p.started:
	default:
		t.Error("started not closed by WriteTo")
	}
}

// TestBodyPipeRead: a transport that reads gets the bytes in order, in
// pieces as small as its buffer, then io.EOF, or the writer's error.
func TestBodyPipeRead(t *testing.T) {
	for _, end := range []error{nil, errAborted} {
		p := newBodyPipe()
		data := bytes.Repeat([]byte("abcdefg"), 100)
		go func() {
			p.Write(data[:350])
			p.Write(data[350:])
			p.closeWrite(end)
		}()
		var got []byte
		buf := make([]byte, 64)
		var err error
		for {
			var n int
			n, err = p.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
		}
		want := end
		if want == nil {
			want = io.EOF
		}
		if !bytes.Equal(got, data) || err != want {
			t.Errorf("closeWrite(%v): read %d bytes (equal %v), then %v; want %d, %v", end, len(got), bytes.Equal(got, data), err, len(data), want)
		}
	}
}

// TestBodyPipeCloseReadFailsWriter: a Write blocked because nobody reads
// fails with closeRead's error (the peer answered), as do later ones.
func TestBodyPipeCloseReadFailsWriter(t *testing.T) {
	p := newBodyPipe()
	done := make(chan error, 1)
	go func() {
		_, err := p.Write([]byte("stuck"))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	p.closeRead(errResponded)
	select {
	case err := <-done:
		if !errors.Is(err, errResponded) {
			t.Errorf("blocked Write: %v, want %v", err, errResponded)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Write still blocked after closeRead")
	}
	if _, err := p.Write([]byte("x")); !errors.Is(err, errResponded) {
		t.Errorf("later Write: %v, want %v", err, errResponded)
	}
}

// TestBodyPipeTransportWriteFails: when writing to the connection fails,
// WriteTo returns the error and the Write learns how much was written;
// it stays blocked on the rest until the pipe is closed.
func TestBodyPipeTransportWriteFails(t *testing.T) {
	p := newBodyPipe()
	boom := errors.New("connection reset")
	type res struct {
		n   int
		err error
	}
	done := make(chan res, 1)
	go func() {
		n, err := p.Write(make([]byte, 100))
		done <- res{n, err}
	}()
	if n, err := p.WriteTo(&sliceWriter{err: boom}); n != 50 || err != boom {
		t.Fatalf("WriteTo: %d, %v; want 50, %v", n, err, boom)
	}
	p.closeRead(errResponded)
	select {
	case r := <-done:
		if r.n != 50 || !errors.Is(r.err, errResponded) {
			t.Errorf("Write: %d, %v; want 50, %v", r.n, r.err, errResponded)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Write still blocked")
	}
}
