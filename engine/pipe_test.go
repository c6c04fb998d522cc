package engine

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// chunkWriter records the size of each Write it gets.
type chunkWriter struct {
	bytes.Buffer
	writes []int
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	c.writes = append(c.writes, len(p))
	return c.Buffer.Write(p)
}

// TestBlockPipe reads what a writer sent in blocks through Read, WriteTo
// and both in turn, and checks that WriteTo passes each block whole, that
// the writer's error reaches the reader, and that Close releases a writer.
func TestBlockPipe(t *testing.T) {
	blocks := [][]byte{randBytes(1, 100_000), randBytes(2, 7), {}, randBytes(3, 65_536)}
	want := bytes.Join(blocks, nil)
	werr := errors.New("drive failed")
	for _, tc := range []struct {
		name    string
		readN   int   // bytes taken with Read (1 KiB at a time) before WriteTo, -1: Read only
		fail    error // the writer's close error
		wantErr error
	}{
		{"writeto", 0, nil, nil},
		{"read", -1, nil, nil},
		{"read-then-writeto", 5000, nil, nil},
		{"writeto-error", 0, werr, werr},
		{"read-error", -1, werr, werr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bp := newBlockPipe()
			wrote := make(chan error, 1)
			go func() {
				for _, b := range blocks {
					if n, err := bp.Write(b); err != nil || n != len(b) {
						wrote <- err
						bp.CloseWithError(err)
						return
					}
				}
				wrote <- nil
				bp.CloseWithError(tc.fail)
			}()
			var got []byte
			var err error
			switch {
			case tc.readN < 0:
				got, err = io.ReadAll(iotest.OneByteReader(bp))
			default:
				got = make([]byte, tc.readN)
				if _, err := io.ReadFull(bp, got); err != nil {
					t.Fatal(err)
				}
				var cw chunkWriter
				_, err = bp.WriteTo(&cw)
				got = append(got, cw.Bytes()...)
				// Every block after the first went to w in one call.
				if tc.readN == 0 && tc.fail == nil && len(cw.writes) != 3 {
					t.Errorf("WriteTo made %d writes %v, want 3 (one per non-empty block)", len(cw.writes), cw.writes)
				}
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("read error %v, want %v", err, tc.wantErr)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("read %d bytes, want the %d written", len(got), len(want))
			}
			if err := <-wrote; err != nil {
				t.Fatalf("writer: %v", err)
			}
		})
	}

	t.Run("close", func(t *testing.T) {
		bp := newBlockPipe()
		wrote := make(chan error, 1)
		go func() {
			_, err := bp.Write(make([]byte, 10))
			wrote <- err
		}()
		buf := make([]byte, 4)
		if n, err := bp.Read(buf); n != 4 || err != nil {
			t.Fatalf("Read = %d, %v", n, err)
		}
		bp.Close() // mid-block: the writer is released
		if err := <-wrote; !errors.Is(err, io.ErrClosedPipe) {
			t.Fatalf("Write after the reader closed: %v, want ErrClosedPipe", err)
		}
		if n, err := bp.Write([]byte{1}); n != 0 || !errors.Is(err, io.ErrClosedPipe) {
			t.Fatalf("Write to a closed pipe = %d, %v", n, err)
		}
	})
}

// TestBlockPipeConsumedThenClosed: a reader that takes a block whole and
// then closes (fasthttp reads a body's Content-Length, then closes the
// stream) leaves the block's Write successful. The Write used to return
// ErrClosedPipe when it woke to both the take and the close (select picks
// at random), so the read looked cut short, and a degraded GET was not
// queued for Heal (TestReadQueuesHealWhenClosedAtOnce).
func TestBlockPipeConsumedThenClosed(t *testing.T) {
	for _, viaWriteTo := range []bool{false, true} {
		failed := 0
		const rounds = 2000
		for range rounds {
			bp := newBlockPipe()
			wrote := make(chan error, 1)
			block := randBytes(4, 4<<10)
			go func() {
				n, err := bp.Write(block)
				if err == nil && n != len(block) {
					err = io.ErrShortWrite
				}
				wrote <- err
			}()
			if viaWriteTo {
				// Read side stops once the block is sent on: a LimitedWriter.
				var buf bytes.Buffer
				lw := &limitedWriter{w: &buf, n: len(block)}
				if _, err := bp.WriteTo(lw); !errors.Is(err, errLimit) {
					t.Fatalf("WriteTo: %v", err)
				}
			} else if _, err := io.ReadFull(bp, make([]byte, len(block))); err != nil {
				t.Fatal(err)
			}
			bp.Close()
			if err := <-wrote; err != nil {
				failed++
			}
		}
		if failed > 0 {
			t.Errorf("WriteTo %v: %d of %d writes whose block was taken whole failed once the reader closed", viaWriteTo, failed, rounds)
		}
	}
}

var errLimit = errors.New("limit reached")

// limitedWriter takes n bytes, then fails the Write after the one that
// reached n: it stops WriteTo once n bytes were written.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	m, err := l.w.Write(p)
	l.n -= m
	if err == nil && l.n <= 0 {
		err = errLimit
	}
	return m, err
}
