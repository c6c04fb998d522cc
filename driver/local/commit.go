package local

import (
	"sync"

	bolt "go.etcd.io/bbolt"
)

// committer runs record mutations in bbolt read-write transactions, grouping
// the mutations of concurrent callers into one transaction and one fsync
// (group commit).
//
// bbolt's own DB.Batch also groups, but it waits DB.MaxBatchDelay (10ms by
// default) before committing even a lone call, which caps a sequential
// writer at about 100 records a second. Here the first caller commits at
// once; callers arriving meanwhile queue up and the first of them commits the
// whole queue as soon as the running transaction ends. No caller commits more
// than one transaction on behalf of others.
//
// Durability: a caller is woken only after the transaction holding its
// mutation has been committed, and bbolt's commit returns after fdatasync
// of the data pages and then of the meta page (unless NoSync). So one
// batch costs one commit's fsyncs per drive, however many callers share it.
type committer struct {
	db *bolt.DB

	// committed, if set (tests), is called after each transaction commit,
	// fsyncs included, with the number of mutations it held and its
	// error, before any of their callers is woken.
	committed func(ops int, err error)
	// single, if set (benchmarks), commits each mutation alone: the
	// behaviour without group commit, to measure what grouping buys.
	single bool

	mu      sync.Mutex // guards the following fields
	queue   []*commitOp
	leading bool // a caller is committing a transaction
}

// commitOp is one caller's mutation.
type commitOp struct {
	fn   func(*bolt.Bucket) error
	err  error         // result, set before wake is signalled
	done bool          // fn has been committed or has failed
	wake chan struct{} // signalled when done, or to hand leadership over
}

// do runs fn on the records bucket and returns once the transaction holding
// it has been committed. fn may run more than once and must return an error
// only for failures that should fail the whole transaction.
func (c *committer) do(fn func(*bolt.Bucket) error) error {
	op := &commitOp{fn: fn, wake: make(chan struct{}, 1)}
	c.mu.Lock()
	c.queue = append(c.queue, op)
	if c.leading {
		c.mu.Unlock()
		<-op.wake
		if op.done {
			return op.err
		}
		// Leadership was handed to us: op heads the queue.
		c.mu.Lock()
	}
	c.leading = true
	ops := c.queue
	c.queue = nil
	if c.single && len(ops) > 1 {
		ops, c.queue = ops[:1], ops[1:]
	}
	c.mu.Unlock()

	c.run(ops)

	c.mu.Lock()
	if len(c.queue) > 0 {
		c.queue[0].wake <- struct{}{}
	} else {
		c.leading = false
	}
	c.mu.Unlock()
	return op.err
}

// run commits ops in one transaction and wakes their callers.
func (c *committer) run(ops []*commitOp) {
	err := c.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(recordsBucket)
		for _, op := range ops {
			if err := op.fn(b); err != nil {
				return err
			}
		}
		return nil
	})
	if c.committed != nil {
		c.committed(len(ops), err)
	}
	for _, op := range ops {
		op.err = err
	}
	if err != nil && len(ops) > 1 {
		// Retry one by one so that an op that failed the transaction
		// does not fail the others.
		for _, op := range ops {
			op.err = c.db.Update(func(tx *bolt.Tx) error {
				return op.fn(tx.Bucket(recordsBucket))
			})
			if c.committed != nil {
				c.committed(1, op.err)
			}
		}
	}
	for _, op := range ops {
		op.done = true
		op.wake <- struct{}{}
	}
}
