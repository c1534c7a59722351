package gpt2

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// workerWatch is how long an idle worker polls for the next job before it
// parks; see (*pool).watch. It outlasts the serial work between the pool
// calls of one decode step (layer norm, residuals, a short attention), so
// workers stay awake through a forward pass and park between passes.
const workerWatch = 200 * time.Microsecond

// pool is a fixed set of worker goroutines that split loops across cores.
//
// A loop is posted as a job of numbered contiguous chunks. The calling
// goroutine and whichever workers are idle take chunks from the job with an
// atomic counter until none remain, so a caller never waits on a chunk that
// nobody has started: it only waits for chunks already running elsewhere.
// That makes concurrent callers safe and deadlock-free — they share the
// workers, and a fn that itself calls For cannot starve — and it balances
// load when a core is taken by another process. A worker out of work
// watches for the next job for up to workerWatch, yielding its processor
// all the while, then parks on a channel receive: nothing spins longer,
// and an idle pool uses no CPU.
//
// For and linear are safe for concurrent use by any number of goroutines
// and do not allocate in steady state. Close must not race with them.
type pool struct {
	n        int
	kern     *kernels      // SIMD kernels for this CPU, or the pure-Go ones
	watchFor time.Duration // how long workers and callers poll before parking
	free     chan *job     // finished jobs, kept for reuse so calls don't allocate

	posts atomic.Uint32 // jobs posted so far, for watching workers

	mu     sync.Mutex
	active []*job          // posted jobs that may have chunks left, oldest first
	idle   []chan struct{} // wake channels of parked workers
	closed bool
}

// newPool starts a pool of n workers (n < 1 means GOMAXPROCS), counting the
// calling goroutine of each For as one of them: n-1 goroutines are started.
func newPool(n int) *pool { return newPoolWatch(n, workerWatch) }

// newPoolWatch is newPool with the time workers watch for work before they
// park. It is fixed before the workers start, so no worker reads it racily.
func newPoolWatch(n int, watchFor time.Duration) *pool {
	if n < 1 {
		n = runtime.GOMAXPROCS(0)
	}
	p := &pool{
		n:        n,
		kern:     bestKernels(),
		watchFor: watchFor,
		free:     make(chan *job, 8),
		active:   make([]*job, 0, 8),
		idle:     make([]chan struct{}, 0, n),
	}
	for i := 1; i < n; i++ {
		go p.worker(make(chan struct{}, 1))
	}
	return p
}

// Size returns the number of workers, the caller of For included.
func (p *pool) Size() int { return p.n }

// Close stops the workers once they are idle. No For or linear call may
// follow.
func (p *pool) Close() {
	p.mu.Lock()
	p.closed = true
	for _, w := range p.idle {
		w <- struct{}{}
	}
	p.idle = p.idle[:0]
	p.mu.Unlock()
}

// worker helps with the oldest posted job, or parks on wake until a caller
// posts one.
func (p *pool) worker(wake chan struct{}) {
	for {
		p.mu.Lock()
		j := p.next()
		if j == nil {
			if p.closed {
				p.mu.Unlock()
				return
			}
			seen := p.posts.Load()
			p.mu.Unlock()
			if p.watch(seen) {
				continue
			}
			p.mu.Lock()
			if p.posts.Load() != seen || p.closed {
				p.mu.Unlock()
				continue
			}
			p.idle = append(p.idle, wake)
			p.mu.Unlock()
			<-wake
			continue
		}
		j.refs.Add(1)
		p.mu.Unlock()
		j.work()
		j.release()
	}
}

// watch polls for a job posted after the count seen, for at most
// p.watchFor (workerWatch), and reports whether one was. A parked worker
// starts late: the caller's wake readies it on the caller's own P, where
// it waits until an idle P's thread is woken (a futex wake; on a VM an IPI
// through the hypervisor) and takes it — about 100 µs here, longer than
// many decode-sized linear calls take. So a worker that just finished
// stays awake for the next call of the same forward pass, and parks
// between passes.
//
// Polling yields the processor each round (runtime.Gosched): a goroutine
// this worker readied — a caller it just finished a job for — runs at
// once instead of waiting for the scheduler to move it to an idle P.
func (p *pool) watch(seen uint32) bool {
	start := time.Now()
	for i := 1; ; i++ {
		if p.posts.Load() != seen {
			return true
		}
		if i%16 == 0 && time.Since(start) > p.watchFor {
			return false
		}
		runtime.Gosched()
	}
}

// await returns when every chunk of j is done. Like a worker, the caller
// polls briefly before it blocks: parked, it would be readied onto the P
// of the worker finishing the last chunk and wait there while that worker
// watches for the next job.
func (j *job) await() {
	start := time.Now()
	for i := 1; ; i++ {
		select {
		case <-j.done:
			return
		default:
		}
		if i%16 == 0 && time.Since(start) > j.p.watchFor {
			<-j.done
			return
		}
		runtime.Gosched()
	}
}

// next returns the oldest active job with chunks left to hand out, and
// unlists the exhausted ones it passes so no worker comes back to them.
// p.mu must be held.
func (p *pool) next() *job {
	for len(p.active) > 0 {
		j := p.active[0]
		if int(j.next.Load()) < j.parts {
			return j
		}
		p.unlist(j)
	}
	return nil
}

// unlist removes j from the active jobs if it is there. p.mu must be held.
func (p *pool) unlist(j *job) {
	for i, a := range p.active {
		if a == j {
			copy(p.active[i:], p.active[i+1:])
			p.active[len(p.active)-1] = nil
			p.active = p.active[:len(p.active)-1]
			return
		}
	}
}

// For runs fn over [0, total) split into at most Size contiguous chunks,
// the calling goroutine taking chunks too, and returns when all are done.
// Chunks may run concurrently with each other and in any order.
//
// For itself does not allocate. A func literal that captures variables
// escapes when passed here and is allocated by the caller; callers on a hot
// path keep one func value and reuse it.
func (p *pool) For(total int, fn func(start, end int)) {
	if total <= 0 {
		return
	}
	parts := min(p.n, total)
	if parts == 1 {
		fn(0, total)
		return
	}
	j := p.job()
	j.fn = fn
	p.run(j, total, (total+parts-1)/parts)
}

// Each runs fn(slot, i) for every i in [0, total), handing the indices
// out one at a time to the calling goroutine and the idle workers, so a
// worker slowed by another process takes fewer; it returns when all are
// done. slot < Size numbers the goroutines of the run: no two hold the
// same slot at once, so fn may use per-slot scratch. As with For, keep
// one func value on a hot path.
func (p *pool) Each(total int, fn func(slot, i int)) {
	if total <= 0 {
		return
	}
	if p.n == 1 || total == 1 {
		for i := 0; i < total; i++ {
			fn(0, i)
		}
		return
	}
	j := p.job()
	j.each = fn
	p.run(j, total, 1)
}

// job is one posted loop: chunk i covers units [i*chunk, min((i+1)*chunk,
// total)) and runs fn, each for every unit, or the linear layer in lin
// when both are nil.
type job struct {
	p     *pool
	fn    func(start, end int)
	each  func(slot, i int)
	lin   linearJob
	total int
	chunk int
	parts int

	next  atomic.Int32 // index of the next chunk to hand out
	left  atomic.Int32 // chunks not finished; reaching 0 sends on done
	refs  atomic.Int32 // goroutines holding the job; the last one frees it
	slots atomic.Int32 // scratch slots handed out, one per goroutine
	done  chan struct{}

	// scratch[s] belongs to the goroutine holding slot s during a run. A
	// job is listed as active while its chunks are handed out, and only
	// workers that find it listed join, so at most Size goroutines work on
	// it and Size slots suffice.
	scratch []scratch
	// act holds the input rows of a narrow GEMM, prepared by the caller
	// before the chunks are handed out (gemm_narrow.go).
	act narrowA
}

// job returns a job ready for run, reusing a freed one when there is one.
func (p *pool) job() *job {
	select {
	case j := <-p.free:
		return j
	default:
		return &job{p: p, done: make(chan struct{}, 1), scratch: make([]scratch, p.n)}
	}
}

// run splits [0, total) into chunks of chunk units, lists the job for idle
// workers to join, works on it itself, and once every chunk is handed out
// unlists it and waits for the chunks others are still running.
func (p *pool) run(j *job, total, chunk int) {
	j.total, j.chunk = total, chunk
	j.parts = (total + chunk - 1) / chunk
	j.next.Store(0)
	j.slots.Store(0)
	j.left.Store(int32(j.parts))
	j.refs.Store(1)
	if j.parts > 1 && p.n > 1 {
		p.mu.Lock()
		p.active = append(p.active, j)
		p.posts.Add(1)
		for w := min(j.parts-1, len(p.idle)); w > 0; w-- {
			wake := p.idle[len(p.idle)-1]
			p.idle = p.idle[:len(p.idle)-1]
			wake <- struct{}{}
		}
		p.mu.Unlock()
	}
	j.work()
	if j.parts > 1 && p.n > 1 {
		p.mu.Lock()
		p.unlist(j)
		p.mu.Unlock()
	}
	j.await()
	j.fn, j.each = nil, nil
	j.lin = linearJob{}
	j.release()
}

// work takes and runs chunks until none are left to take.
func (j *job) work() {
	slot := -1
	for {
		i := int(j.next.Add(1)) - 1
		if i >= j.parts {
			return
		}
		if slot < 0 {
			slot = int(j.slots.Add(1)) - 1
		}
		start := i * j.chunk
		end := min(start+j.chunk, j.total)
		switch {
		case j.each != nil:
			for u := start; u < end; u++ {
				j.each(slot, u)
			}
		case j.fn != nil:
			j.fn(start, end)
		default:
			j.lin.run(&j.scratch[slot], start, end)
		}
		if j.left.Add(-1) == 0 {
			j.done <- struct{}{}
		}
	}
}

// release drops one reference; the last one returns the job for reuse. A
// worker that joined may still be leaving work after the caller has
// returned, so the job is not reused until it has let go too.
func (j *job) release() {
	if j.refs.Add(-1) != 0 {
		return
	}
	select {
	case j.p.free <- j:
	default:
	}
}
