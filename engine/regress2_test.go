package engine

import (
	"context"
	"errors"
	"io"
	"testing"
)

// R6: a body that returns its last bytes together with an error, then EOF.
type dataWithErr struct {
	data []byte
	sent bool
}

func (b *dataWithErr) Read(p []byte) (int, error) {
	n := copy(p, b.data)
	b.data = b.data[n:]
	if len(b.data) == 0 && !b.sent {
		b.sent = true
		return n, errors.New("signature mismatch")
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

func TestRegressDataWithErrorSwallowed(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4, stripeSize: 64 << 10})
	for _, size := range []int{32768 * 10, 1 << 20} {
		_, err := r.e.Put(context.Background(), "t", "c", "dwe", &dataWithErr{data: randBytes(6, size)}, PutOptions{Size: -1})
		t.Logf("size %d: Put err = %v", size, err)
		if err == nil {
			t.Errorf("size %d: body error returned with the final bytes was ignored; artifact stored", size)
		}
	}
}

// R7: a Put through a node whose clock is behind is acknowledged but lost.
