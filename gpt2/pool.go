package gpt2

import "sync"

// Pool is a fixed set of worker goroutines that split loops across cores.
// Idle workers park on a channel; nothing spins. A Pool is safe for use by
// one caller at a time per For call; concurrent For calls are serialised.
type Pool struct {
	n    int
	mu   sync.Mutex
	jobs chan func()
	wg   sync.WaitGroup
}

// NewPool starts a pool of n workers (n < 1 means 1).
func NewPool(n int) *Pool {
	if n < 1 {
		n = 1
	}
	p := &Pool{n: n, jobs: make(chan func())}
	for i := 1; i < n; i++ {
		go func() {
			for f := range p.jobs {
				f()
			}
		}()
	}
	return p
}

// Size returns the number of workers.
func (p *Pool) Size() int { return p.n }

// For runs fn over [0, total) split into at most Size contiguous chunks,
// the calling goroutine taking one of them, and returns when all are done.
func (p *Pool) For(total int, fn func(start, end int)) {
	if total <= 0 {
		return
	}
	parts := p.n
	if parts > total {
		parts = total
	}
	if parts == 1 {
		fn(0, total)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var wg sync.WaitGroup
	chunk := (total + parts - 1) / parts
	for s := chunk; s < total; s += chunk {
		e := min(s+chunk, total)
		wg.Add(1)
		start := s
		p.jobs <- func() { fn(start, e); wg.Done() }
	}
	fn(0, min(chunk, total))
	wg.Wait()
}

// Close stops the workers.
func (p *Pool) Close() { close(p.jobs) }

// linear computes out (M, Out) = x (M, In) · Wᵀ + b, splitting output
// columns across the pool.
func (p *Pool) linear(out, x []float32, m int, l *Linear) {
	linearRef(out, x, m, l)
}
