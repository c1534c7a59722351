package tokenizer

import (
	"hash/maphash"
	"strings"
	"sync"
)

const (
	// defaultCacheWords bounds the number of words the merge cache holds.
	defaultCacheWords = 1 << 15
	// maxCachedWord is the longest word, in bytes, that is cached; longer
	// words are rare and would make the cache's memory use depend on input.
	maxCachedWord = 128
	// cacheShards spreads lock contention; a power of two.
	cacheShards = 32
)

// wordCache maps a word's bytes to its BPE token ids. It is bounded (at
// most the capacity given to newWordCache, with keys of at most
// maxCachedWord bytes) and safe for concurrent use.
//
// Each shard keeps two generations: new words go into recent; when recent
// is full it becomes older and a fresh recent starts, dropping the previous
// older wholesale. A hit in older is copied back into recent. This keeps
// words in frequent use without the bookkeeping of an LRU list, and every
// operation is O(1).
//
// Cached id slices are shared and must never be modified.
type wordCache struct {
	seed   maphash.Seed
	shards [cacheShards]cacheShard
}

type cacheShard struct {
	mu     sync.Mutex
	recent map[string][]int32
	older  map[string][]int32
	limit  int // per generation
}

// newWordCache returns a cache holding at most capacity words, or nil (a
// valid, always-missing cache) if capacity is not positive.
func newWordCache(capacity int) *wordCache {
	if capacity <= 0 {
		return nil
	}
	limit := max(capacity/(2*cacheShards), 1)
	c := &wordCache{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].limit = limit
		c.shards[i].recent = make(map[string][]int32)
	}
	return c
}

func (c *wordCache) shard(word string) *cacheShard {
	return &c.shards[maphash.String(c.seed, word)&(cacheShards-1)]
}

// get returns the cached ids of word.
func (c *wordCache) get(word string) ([]int32, bool) {
	if c == nil || len(word) > maxCachedWord {
		return nil, false
	}
	s := c.shard(word)
	s.mu.Lock()
	defer s.mu.Unlock()
	if ids, ok := s.recent[word]; ok {
		return ids, true
	}
	if ids, ok := s.older[word]; ok {
		delete(s.older, word)
		s.insert(strings.Clone(word), ids)
		return ids, true
	}
	return nil, false
}

// put records the ids of word. ids must not be modified afterwards.
func (c *wordCache) put(word string, ids []int32) {
	if c == nil || len(word) > maxCachedWord {
		return
	}
	s := c.shard(word)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.recent[word]; !ok {
		// Clone: word usually points into a caller's (possibly huge) text.
		s.insert(strings.Clone(word), ids)
	}
}

// insert adds to recent, rotating generations when it is full. The caller
// holds s.mu.
func (s *cacheShard) insert(word string, ids []int32) {
	if len(s.recent) >= s.limit {
		s.older = s.recent
		s.recent = make(map[string][]int32, s.limit)
	}
	s.recent[word] = ids
}

// len returns the number of cached words (for tests).
func (c *wordCache) len() int {
	if c == nil {
		return 0
	}
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.recent) + len(s.older)
		s.mu.Unlock()
	}
	return n
}
