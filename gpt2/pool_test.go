package gpt2

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// visits counts how often For handed each index to fn.
type visits struct {
	n []atomic.Int32
}

func (v *visits) fn(start, end int) {
	for i := start; i < end; i++ {
		v.n[i].Add(1)
	}
}

func (v *visits) check(t *testing.T, what string) {
	t.Helper()
	for i := range v.n {
		if c := v.n[i].Load(); c != 1 {
			t.Fatalf("%s: index %d visited %d times, want 1", what, i, c)
		}
	}
}

// watchTimes are the worker watch times the pool tests run with: parking
// at once exercises waking, the default mostly the watch.
var watchTimes = []time.Duration{0, workerWatch}

func TestForVisitsEveryIndexOnce(t *testing.T) {
	for _, w := range watchTimes {
		for _, n := range []int{1, 2, 3, 8} {
			p := newPoolWatch(n, w)
			for _, total := range []int{0, 1, 2, 3, 7, 8, 9, 100, 1001} {
				v := &visits{n: make([]atomic.Int32, total)}
				p.For(total, v.fn)
				v.check(t, "For")
			}
			p.Close()
		}
	}
}

func TestForSplitsIntoAtMostSizeChunks(t *testing.T) {
	p := newPool(3)
	defer p.Close()
	var mu sync.Mutex
	var chunks [][2]int
	p.For(10, func(s, e int) {
		mu.Lock()
		chunks = append(chunks, [2]int{s, e})
		mu.Unlock()
	})
	if len(chunks) > 3 {
		t.Errorf("For(10) on 3 workers made %d chunks: %v", len(chunks), chunks)
	}
}

func TestForConcurrentCallers(t *testing.T) {
	for _, w := range watchTimes {
		p := newPoolWatch(2, w)
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 200; i++ {
					v := &visits{n: make([]atomic.Int32, 1+(g*37+i)%97)}
					p.For(len(v.n), v.fn)
					v.check(t, "concurrent For")
				}
			}()
		}
		wg.Wait()
		p.Close()
	}
}

// A chunk that calls For again must not deadlock even when every worker is
// inside such a chunk: callers take their own chunks and never wait on one
// that nobody has started.
func TestForNested(t *testing.T) {
	p := newPoolWatch(2, 0)
	defer p.Close()
	var total atomic.Int64
	done := make(chan struct{})
	go func() {
		p.For(16, func(s, e int) {
			for i := s; i < e; i++ {
				p.For(50, func(s, e int) { total.Add(int64(e - s)) })
			}
		})
		close(done)
	}()
	await(t, done, "nested For (deadlocked?)")
	if total.Load() != 16*50 {
		t.Errorf("nested For covered %d indices, want %d", total.Load(), 16*50)
	}
}

func TestForDoesNotAllocate(t *testing.T) {
	p := newPool(2)
	defer p.Close()
	v := &visits{n: make([]atomic.Int32, 64)}
	fn := v.fn // one func value, made once
	p.For(64, fn)
	if a := testing.AllocsPerRun(100, func() { p.For(64, fn) }); a != 0 {
		t.Errorf("For: %v allocations per call, want 0", a)
	}
}

// Idle workers must park, not spin: with nothing posted the process should
// use next to no CPU.
func TestIdleWorkersPark(t *testing.T) {
	p := newPool(4)
	defer p.Close()
	p.For(100, func(int, int) {})
	waitFor(t, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.idle) == p.Size()-1
	}, "every worker to park")
	t0 := cpuTime()
	time.Sleep(200 * time.Millisecond)
	used := cpuTime() - t0
	if used > 50*time.Millisecond {
		t.Errorf("idle pool used %v of CPU in 200ms", used)
	}
}

func TestCloseStopsWorkers(t *testing.T) {
	before := runtime.NumGoroutine()
	p := newPool(5)
	p.For(10, func(int, int) {})
	p.Close()
	// The workers exit in their own time on a loaded machine: wait for
	// it, giving up only near the test binary's deadline.
	waitFor(t, func() bool { return runtime.NumGoroutine() <= before },
		fmt.Sprintf("the goroutines to go back to the %d there were before newPool", before))
}

// cpuTime returns the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkMemBandwidth reads a 512 MiB float32 slice with the pool and
// the vector kernels (dot of each chunk with itself): the memory read rate
// decode-sized linear calls are bounded by. GB/s is bytes read.
func BenchmarkMemBandwidth(b *testing.B) {
	p := newPool(0)
	defer p.Close()
	x := make([]float32, 128<<20)
	for i := range x {
		x[i] = 1
	}
	const chunk = 1 << 20
	sums := make([]float32, len(x)/chunk)
	fn := func(start, end int) {
		for c := start; c < end; c++ {
			s := x[c*chunk : (c+1)*chunk]
			sums[c] = dot(s, s)
		}
	}
	b.SetBytes(int64(4 * len(x)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.For(len(sums), fn)
	}
	b.ReportMetric(float64(4*len(x))*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
}

// BenchmarkForOverhead is the cost of one For over all workers with no
// work: waking the workers, handing out chunks, waiting.
func BenchmarkForOverhead(b *testing.B) {
	p := newPool(0)
	defer p.Close()
	fn := func(int, int) {}
	for i := 0; i < b.N; i++ {
		p.For(p.Size(), fn)
	}
}

// TestEachVisitsEveryIndexOnceWithOwnSlots checks that Each hands every
// index out once and that no two goroutines hold the same slot at once
// (each slot's counter is taken while its index runs).
func TestEachVisitsEveryIndexOnceWithOwnSlots(t *testing.T) {
	for _, w := range watchTimes {
		for _, n := range []int{1, 2, 3, 8} {
			p := newPoolWatch(n, w)
			for _, total := range []int{0, 1, 2, 3, 7, 100, 1001} {
				v := &visits{n: make([]atomic.Int32, total)}
				busy := make([]atomic.Int32, n)
				var bad atomic.Int32
				p.Each(total, func(slot, i int) {
					if slot < 0 || slot >= n || busy[slot].Add(1) != 1 {
						bad.Add(1)
						return
					}
					v.fn(i, i+1)
					runtime.Gosched()
					busy[slot].Add(-1)
				})
				if bad.Load() != 0 {
					t.Fatalf("n=%d total=%d: %d indices ran on a slot out of range or in use", n, total, bad.Load())
				}
				v.check(t, "Each")
			}
			p.Close()
		}
	}
}
