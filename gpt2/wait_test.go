package gpt2

import (
	"runtime"
	"testing"
	"time"
)

// The tests wait on events, never on the clock: a shared, slow machine
// may take any time to get there. These helpers give up only shortly
// before the test binary's own -timeout would end the run, so a hang is
// still reported by name.

// giveUp returns when waiting should stop: a little before t's deadline,
// or never when there is none.
func giveUp(t *testing.T) <-chan time.Time {
	d, ok := t.Deadline()
	if !ok {
		return nil
	}
	return time.After(time.Until(d) * 9 / 10)
}

// await waits for done, failing the test with what if it never comes.
func await[T any](t *testing.T, done <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-done:
		return v
	case <-giveUp(t):
		t.Fatalf("gave up waiting: %s", what)
	}
	panic("unreachable")
}

// waitFor polls cond until it holds, failing the test with what if it
// never does.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	stop := giveUp(t)
	for !cond() {
		select {
		case <-stop:
			t.Fatalf("gave up waiting: %s", what)
		default:
		}
		runtime.Gosched()
		time.Sleep(100 * time.Microsecond)
	}
}

// holdPool stops m's forward passes: it takes the pool's lock, which
// every pool call of more than one chunk takes to post its job, so an
// Engine's scheduler stops inside its next step (a step of the tiny model
// posts several: attention parts, the LM head). The test thereby decides
// when generation proceeds. m's pool must have two workers or more.
// release lets everything continue.
func holdPool(t *testing.T, m *Model) (release func()) {
	t.Helper()
	if m.pool.Size() < 2 {
		t.Fatal("holdPool needs a pool of two workers or more")
	}
	m.pool.mu.Lock()
	return m.pool.mu.Unlock
}
