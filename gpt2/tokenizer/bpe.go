package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	sugarme "github.com/sugarme/tokenizer"
)

// mergeRule is what merging one adjacent pair of tokens does: rank orders
// the merges (lower merges first, the line number in merges.txt) and id is
// the merged token.
type mergeRule struct {
	rank int32
	id   int32
}

// pairKey packs an adjacent token pair into a map key.
func pairKey(left, right int32) uint64 {
	return uint64(uint32(left))<<32 | uint64(uint32(right))
}

// bpeModel is GPT-2's byte-level BPE model in sugarme's Model form. It is
// immutable after construction except for its cache, and safe for
// concurrent use.
//
// BPE runs on raw bytes: a word starts as one token per byte and adjacent
// pairs are merged, always the lowest-ranked pair present first, every
// occurrence of it left to right, until no pair has a merge rule. This is
// exactly openai/gpt-2 encoder.py's bpe(); see bpe for how it is done in
// O(n log n).
type bpeModel struct {
	vocab  map[string]int // byte-level spelling -> id
	tokens []string       // id -> byte-level spelling, "" for unused ids
	bytes  [][]byte       // id -> raw bytes, nil for unused ids
	byteID [256]int32     // the one-byte token of each byte
	merges map[uint64]mergeRule
	ranked [][2]int32 // the merge pairs by rank, for Save

	cache   *wordCache
	scratch sync.Pool // *bpeScratch
}

var _ sugarme.Model = (*bpeModel)(nil)

// newBPEModel builds the model. vocab maps byte-level spellings to ids;
// merges lists pairs of spellings by rank (a pair listed twice keeps its
// last rank, as encoder.py's dict does); extra maps ids to raw-text tokens
// (added tokens such as <|endoftext|>) that may or may not also be in vocab.
func newBPEModel(vocab map[string]int, merges [][2]string, extra map[int]string) (*bpeModel, error) {
	size := 0
	for _, id := range vocab {
		size = max(size, id+1)
	}
	for id := range extra {
		size = max(size, id+1)
	}
	// Ids index tables, so bound them by the input's size: an id of 4e9
	// would otherwise be a fatal, unrecoverable allocation. Gaps are
	// allowed, but not more ids than twice the tokens given.
	if n := len(vocab) + len(extra); size > 2*n+1024 {
		return nil, fmt.Errorf("%w: ids run up to %d for only %d tokens", ErrMalformed, size-1, n)
	}
	m := &bpeModel{
		vocab:  make(map[string]int, len(vocab)+len(extra)),
		tokens: make([]string, size),
		bytes:  make([][]byte, size),
		merges: make(map[uint64]mergeRule, len(merges)),
		cache:  newWordCache(defaultCacheWords),
	}
	for tok, id := range vocab {
		if id < 0 {
			return nil, fmt.Errorf("%w: vocab token %q has negative id %d", ErrMalformed, tok, id)
		}
		if m.tokens[id] != "" || m.bytes[id] != nil {
			return nil, fmt.Errorf("%w: vocab id %d is given to both %q and %q", ErrMalformed, id, m.tokens[id], tok)
		}
		m.vocab[tok] = id
		m.tokens[id] = tok
		raw, ok := rawBytes(tok)
		if !ok { // not byte-level spelled: Hugging Face decodes such a token as its own text
			raw = []byte(tok)
		}
		m.bytes[id] = raw
	}
	for id, content := range extra {
		if id < 0 {
			return nil, fmt.Errorf("%w: added token %q has negative id %d", ErrMalformed, content, id)
		}
		if have, ok := m.vocab[content]; ok {
			if have != id {
				return nil, fmt.Errorf("%w: added token %q has id %d but the vocab gives it %d", ErrMalformed, content, id, have)
			}
			continue
		}
		if m.tokens[id] != "" {
			return nil, fmt.Errorf("%w: added token %q has id %d, already the vocab's %q", ErrMalformed, content, id, m.tokens[id])
		}
		m.vocab[content] = id
		m.tokens[id] = content
		m.bytes[id] = []byte(content) // added tokens are raw text
	}
	for b := range 256 {
		spelled := string(byteRune(byte(b)))
		id, ok := vocab[spelled]
		if !ok {
			return nil, fmt.Errorf("%w: vocab has no token %q for byte 0x%02x", ErrNotByteLevelBPE, spelled, b)
		}
		m.byteID[b] = int32(id)
	}
	keys := make([]uint64, len(merges))
	for rank, pair := range merges {
		var ids [3]int
		for i, tok := range [3]string{pair[0], pair[1], pair[0] + pair[1]} {
			id, ok := vocab[tok]
			if !ok {
				return nil, fmt.Errorf("%w: merge %d %q: %q is not in the vocab", ErrMalformed, rank+1, pair[0]+" "+pair[1], tok)
			}
			ids[i] = id
		}
		left, right, merged := ids[0], ids[1], ids[2]
		keys[rank] = pairKey(int32(left), int32(right))
		m.merges[keys[rank]] = mergeRule{rank: int32(rank), id: int32(merged)}
	}
	m.ranked = make([][2]int32, 0, len(m.merges))
	for rank, key := range keys {
		if m.merges[key].rank == int32(rank) { // a repeated pair lives at its last rank
			m.ranked = append(m.ranked, [2]int32{int32(key >> 32), int32(uint32(key))})
		}
	}
	m.scratch.New = func() any { return new(bpeScratch) }
	return m, nil
}

// appendWord appends the token ids of word, which must be one GPT-2 word
// (see nextWord), given as raw bytes.
func (m *bpeModel) appendWord(dst []int, word string) []int {
	if len(word) == 1 {
		return append(dst, int(m.byteID[word[0]]))
	}
	ids, ok := m.cache.get(word)
	if !ok {
		ids = m.bpe(word)
		m.cache.put(word, ids)
	}
	for _, id := range ids {
		dst = append(dst, int(id))
	}
	return dst
}

// symbol is one token of a word being merged, in a doubly linked list
// over the word's byte positions. A symbol merged into its left neighbour
// has id -1.
type symbol struct {
	id         int32
	prev, next int32 // -1 at the ends
}

// candidate is a possible merge of the symbol at pos with its right
// neighbour.
type candidate struct {
	rank int32
	pos  int32
}

func (a candidate) less(b candidate) bool {
	return a.rank < b.rank || a.rank == b.rank && a.pos < b.pos
}

// bpeScratch is reusable working memory for bpe.
type bpeScratch struct {
	syms    []symbol
	heap    []candidate
	pending []candidate
}

// bpe merges the bytes of word (len >= 1) and returns the token ids.
//
// Candidates sit in a min-heap ordered by (rank, position), so all
// occurrences of the lowest-ranked pair are merged left to right, exactly
// as encoder.py's bpe() does with repeated scans. Stale candidates (a
// symbol since merged away, or a neighbour changed) are skipped when
// popped. Pairs a merge creates wait in pending until every occurrence of
// the current rank is done, which is what encoder.py's
// merge-all-occurrences-then-rescan loop does even for merge lists where a
// new pair could outrank the merge that made it (well-formed lists such as
// GPT-2's never have one).
func (m *bpeModel) bpe(word string) []int32 {
	sc := m.scratch.Get().(*bpeScratch)
	defer m.scratch.Put(sc)

	n := len(word)
	syms := sc.syms[:0]
	for i := range n {
		syms = append(syms, symbol{id: m.byteID[word[i]], prev: int32(i - 1), next: int32(i + 1)})
	}
	syms[n-1].next = -1
	h := sc.heap[:0]
	for i := 0; i+1 < n; i++ {
		if rule, ok := m.merges[pairKey(syms[i].id, syms[i+1].id)]; ok {
			h = append(h, candidate{rank: rule.rank, pos: int32(i)})
		}
	}
	heapInit(h)
	pending := sc.pending[:0]
	current := int32(-1)
	for {
		if len(pending) > 0 && (len(h) == 0 || h[0].rank != current) {
			for _, c := range pending {
				h = heapPush(h, c)
			}
			pending = pending[:0]
		}
		if len(h) == 0 {
			break
		}
		var c candidate
		c, h = heapPop(h)
		left := &syms[c.pos]
		if left.id < 0 || left.next < 0 {
			continue
		}
		right := &syms[left.next]
		rule, ok := m.merges[pairKey(left.id, right.id)]
		if !ok || rule.rank != c.rank {
			continue
		}
		current = c.rank
		left.id = rule.id
		right.id = -1
		left.next = right.next
		if left.next >= 0 {
			syms[left.next].prev = c.pos
			if r, ok := m.merges[pairKey(left.id, syms[left.next].id)]; ok {
				pending = append(pending, candidate{rank: r.rank, pos: c.pos})
			}
		}
		if left.prev >= 0 {
			if r, ok := m.merges[pairKey(syms[left.prev].id, left.id)]; ok {
				pending = append(pending, candidate{rank: r.rank, pos: left.prev})
			}
		}
	}

	count := 0
	for i := int32(0); i >= 0; i = syms[i].next {
		count++
	}
	ids := make([]int32, 0, count)
	for i := int32(0); i >= 0; i = syms[i].next {
		ids = append(ids, syms[i].id)
	}
	sc.syms, sc.heap, sc.pending = syms, h, pending
	return ids
}

func heapInit(h []candidate) {
	for i := len(h)/2 - 1; i >= 0; i-- {
		heapDown(h, i)
	}
}

func heapPush(h []candidate, c candidate) []candidate {
	h = append(h, c)
	for i := len(h) - 1; i > 0; {
		parent := (i - 1) / 2
		if !h[i].less(h[parent]) {
			break
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
	return h
}

func heapPop(h []candidate) (candidate, []candidate) {
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	heapDown(h, 0)
	return top, h
}

func heapDown(h []candidate, i int) {
	for {
		least := i
		if l := 2*i + 1; l < len(h) && h[l].less(h[least]) {
			least = l
		}
		if r := 2*i + 2; r < len(h) && h[r].less(h[least]) {
			least = r
		}
		if least == i {
			return
		}
		h[i], h[least] = h[least], h[i]
		i = least
	}
}

// Tokenize implements sugarme.Model. sequence is one pre-tokenized word
// spelled in the byte-level alphabet, as preTokenizer produces; offsets are
// byte offsets into sequence.
func (m *bpeModel) Tokenize(sequence string) ([]sugarme.Token, error) {
	raw, ok := rawBytes(sequence)
	if !ok {
		return nil, fmt.Errorf("%w: BPE input %q is not spelled in the byte-level alphabet", ErrNotByteLevelBPE, sequence)
	}
	if len(raw) == 0 {
		return []sugarme.Token{}, nil
	}
	ids := m.appendWord(nil, string(raw))
	toks := make([]sugarme.Token, len(ids))
	at, start := 0, 0 // in raw, in sequence
	for i, id := range ids {
		end := start
		for range m.bytes[id] {
			end += byteLevelWidth(raw[at])
			at++
		}
		toks[i] = sugarme.Token{Id: id, Value: m.tokens[id], Offsets: []int{start, end}}
		start = end
	}
	return toks, nil
}

// TokenToId implements sugarme.Model.
func (m *bpeModel) TokenToId(token string) (int, bool) {
	id, ok := m.vocab[token]
	return id, ok
}

// IdToToken implements sugarme.Model.
func (m *bpeModel) IdToToken(id int) (string, bool) {
	if id < 0 || id >= len(m.tokens) || m.bytes[id] == nil {
		return "", false
	}
	return m.tokens[id], true
}

// GetVocab implements sugarme.Model. It returns a copy: sugarme's
// Tokenizer.GetVocab adds to the map it gets.
func (m *bpeModel) GetVocab() map[string]int {
	vocab := make(map[string]int, len(m.vocab))
	for tok, id := range m.vocab {
		vocab[tok] = id
	}
	return vocab
}

// GetVocabSize implements sugarme.Model.
func (m *bpeModel) GetVocabSize() int {
	return len(m.vocab)
}

// Save implements sugarme.Model: it writes vocab.json and merges.txt (or
// prefix-vocab.json and prefix-merges.txt) into dir.
func (m *bpeModel) Save(dir string, prefix ...string) error {
	name := func(base string) string {
		if len(prefix) > 0 && prefix[0] != "" {
			base = prefix[0] + "-" + base
		}
		return filepath.Join(dir, base)
	}
	vocab, err := json.Marshal(m.vocab)
	if err != nil {
		return fmt.Errorf("save vocab: %w", err)
	}
	if err := os.WriteFile(name("vocab.json"), vocab, 0o644); err != nil {
		return fmt.Errorf("save vocab: %w", err)
	}
	var merges bytes.Buffer
	merges.WriteString("#version: 0.2\n")
	for _, pair := range m.ranked {
		merges.WriteString(m.tokens[pair[0]] + " " + m.tokens[pair[1]] + "\n")
	}
	if err := os.WriteFile(name("merges.txt"), merges.Bytes(), 0o644); err != nil {
		return fmt.Errorf("save merges: %w", err)
	}
	return nil
}
