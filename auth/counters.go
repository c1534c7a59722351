package auth

import (
	"container/list"
	"sync"
	"time"

	"gpt2d/store"
)

// Counter is the state of one throttling key (see store.Counter, where it
// is defined so that a store can keep it).
type Counter = store.Counter

// CounterStore keeps Counters by key (see store.CounterStore). The
// throttles in this package keep their decisions in code and their state
// in a CounterStore, so that replicas sharing one store (PostgreSQL's
// postgres.Counters) share their throttles.
type CounterStore = store.CounterStore

// MemoryCounters is the in-process CounterStore. It holds at most max
// keys: when full, expired keys go first, then the least recently
// updated. An attacker can therefore reset a key only by filling the
// store with other keys, which the per-address budget in turn limits.
type MemoryCounters struct {
	max int

	mu   sync.Mutex
	keys map[string]*list.Element // → *memEntry
	lru  list.List                // front = most recently updated
}

type memEntry struct {
	key string
	c   Counter
}

// NewMemoryCounters returns an empty store of at most max keys (≤ 0:
// 100 000).
func NewMemoryCounters(max int) *MemoryCounters {
	if max <= 0 {
		max = 100_000
	}
	return &MemoryCounters{max: max, keys: map[string]*list.Element{}}
}

// Update implements CounterStore. One mutex serialises every update: each
// is a few map operations.
func (m *MemoryCounters) Update(now time.Time, keys []string, fn func(cs []Counter) []Counter) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cs := make([]Counter, len(keys))
	for i, k := range keys {
		if el, ok := m.keys[k]; ok {
			if e := el.Value.(*memEntry); e.c.Expires.After(now) {
				cs[i] = e.c
			}
		}
	}
	out := fn(cs)
	for i, k := range keys {
		el, ok := m.keys[k]
		switch {
		case !out[i].Expires.After(now):
			if ok {
				m.remove(el)
			}
		case ok:
			el.Value.(*memEntry).c = out[i]
			m.lru.MoveToFront(el)
		default:
			if len(m.keys) >= m.max {
				m.evict(now)
			}
			m.keys[k] = m.lru.PushFront(&memEntry{key: k, c: out[i]})
		}
	}
	return nil
}

// Len returns the number of keys held, expired ones included until they
// are evicted.
func (m *MemoryCounters) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.keys)
}

// evict drops expired keys from the back of the LRU list, then the least
// recently updated key if the store is still full. Looking only at the
// back keeps it O(1) amortised: a key deep in the list that has expired
// is found when it reaches the back, or read as absent before.
func (m *MemoryCounters) evict(now time.Time) {
	for el := m.lru.Back(); el != nil && !el.Value.(*memEntry).c.Expires.After(now); el = m.lru.Back() {
		m.remove(el)
	}
	if len(m.keys) >= m.max {
		m.remove(m.lru.Back())
	}
}

func (m *MemoryCounters) remove(el *list.Element) {
	delete(m.keys, el.Value.(*memEntry).key)
	m.lru.Remove(el)
}
