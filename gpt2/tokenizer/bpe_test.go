package tokenizer

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// naiveBPE is openai/gpt-2 encoder.py's bpe() transliterated: on
// byte-level strings, find the lowest-ranked adjacent pair, merge every
// occurrence left to right, repeat.
func naiveBPE(ranks map[[2]string]int, word string) []string {
	var parts []string
	for _, r := range spell(word) {
		parts = append(parts, string(r))
	}
	for len(parts) > 1 {
		best, bestRank := [2]string{}, -1
		for i := 0; i+1 < len(parts); i++ {
			if r, ok := ranks[[2]string{parts[i], parts[i+1]}]; ok && (bestRank < 0 || r < bestRank) {
				best, bestRank = [2]string{parts[i], parts[i+1]}, r
			}
		}
		if bestRank < 0 {
			break
		}
		var next []string
		for i := 0; i < len(parts); {
			if i+1 < len(parts) && parts[i] == best[0] && parts[i+1] == best[1] {
				next = append(next, best[0]+best[1])
				i += 2
			} else {
				next = append(next, parts[i])
				i++
			}
		}
		parts = next
	}
	return parts
}

// spell returns the byte-level spelling of raw text.
func spell(raw string) string {
	return string(appendByteLevel(nil, raw))
}

// rankMap reads merges.txt into encoder.py's bpe_ranks.
func rankMap(t testing.TB, mergesTxt []byte) map[[2]string]int {
	t.Helper()
	pairs, err := parseMergesTxt(mergesTxt)
	if err != nil {
		t.Fatal(err)
	}
	ranks := make(map[[2]string]int, len(pairs))
	for i, p := range pairs {
		ranks[p] = i
	}
	return ranks
}

// tokensOf returns the byte-level spellings of ids.
func tokensOf(m *bpeModel, ids []int32) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = m.tokens[id]
	}
	return out
}

func TestBPEMatchesEncoderPy(t *testing.T) {
	tok := loadBoth(t)[1].tok
	ranks := rankMap(t, readFile(t, mergesPath))
	var samples []string
	for _, c := range readCases(t) {
		splitWords(c.Text, func(w string) { samples = append(samples, w) })
		samples = append(samples, c.Text) // whole texts too: BPE takes any bytes
	}
	rng := rand.New(rand.NewPCG(7, 8))
	letters := []string{"e", "t", "a", "o", "i", "n", "s", "h", "r", "l", " ", "th", "ing", "'", "1", "é", "東", "\n", "\xff"}
	for range 3000 {
		var b strings.Builder
		for range 1 + rng.IntN(30) {
			b.WriteString(letters[rng.IntN(len(letters))])
		}
		samples = append(samples, b.String())
	}
	samples = append(samples, strings.Repeat("a", 301), strings.Repeat("ab", 150), strings.Repeat("!", 77), strings.Repeat(" ", 50))
	for _, w := range samples {
		if w == "" {
			continue
		}
		got := tokensOf(tok.model, tok.model.bpe(w))
		if want := naiveBPE(ranks, w); !slices.Equal(got, want) {
			t.Errorf("bpe(%q)\n got %q\nwant %q", w, got, want)
		}
	}
}

// tinyVocab is a byte-level vocab of the 256 bytes, <|endoftext|> and the
// given extra tokens (spelled), with ids in that order.
func tinyVocab(extra ...string) map[string]int {
	vocab := make(map[string]int)
	for b := range 256 {
		vocab[string(byteRune(byte(b)))] = len(vocab)
	}
	vocab[EOSToken] = len(vocab)
	for _, tok := range extra {
		if _, ok := vocab[tok]; !ok {
			vocab[tok] = len(vocab)
		}
	}
	return vocab
}

// TestBPEMergesAllOccurrencesBeforeLowerRankedNewPairs uses a merge list
// GPT-2 never has (a pair made by a merge outranks it) to pin down that
// the heap implementation does what encoder.py does, not what a plain
// (rank, position) heap would.
func TestBPEMergesAllOccurrencesBeforeLowerRankedNewPairs(t *testing.T) {
	merges := [][2]string{{"ab", "a"}, {"a", "b"}, {"b", "a"}, {"ab", "ab"}}
	var extra []string
	ranks := map[[2]string]int{}
	for i, p := range merges {
		extra = append(extra, p[0]+p[1])
		ranks[p] = i
	}
	m, err := newBPEModel(tinyVocab(extra...), merges, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		word string
		want []string
	}{
		{"abab", []string{"abab"}}, // a plain heap merges "ab"+"a" first: ["aba", "b"]
		{"ababa", []string{"ab", "aba"}},
		{"aba", []string{"aba"}},
	}
	for _, tt := range tests {
		if want := naiveBPE(ranks, tt.word); !slices.Equal(want, tt.want) {
			t.Fatalf("test table disagrees with encoder.py for %q: %q", tt.word, want)
		}
		if got := tokensOf(m, m.bpe(tt.word)); !slices.Equal(got, tt.want) {
			t.Errorf("bpe(%q) = %q, want %q", tt.word, got, tt.want)
		}
	}
	rng := rand.New(rand.NewPCG(9, 10))
	for range 5000 {
		b := make([]byte, 1+rng.IntN(14))
		for i := range b {
			b[i] = "ab"[rng.IntN(2)]
		}
		w := string(b)
		if got, want := tokensOf(m, m.bpe(w)), naiveBPE(ranks, w); !slices.Equal(got, want) {
			t.Fatalf("bpe(%q) = %q, encoder.py %q", w, got, want)
		}
	}
}

func TestBPERepeatedMergeKeepsLastRank(t *testing.T) {
	// encoder.py builds bpe_ranks with dict(zip(merges, range(...))): a
	// repeated pair ends up with its last rank.
	merges := [][2]string{{"b", "c"}, {"a", "b"}, {"b", "c"}}
	m, err := newBPEModel(tinyVocab("bc", "ab"), merges, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := tokensOf(m, m.bpe("abc")); !slices.Equal(got, []string{"ab", "c"}) {
		t.Errorf("bpe(abc) = %q, want [ab c]", got)
	}
	if len(m.ranked) != 2 {
		t.Errorf("ranked has %d merges, want 2", len(m.ranked))
	}
}

func TestWordCacheStaysBounded(t *testing.T) {
	const capacity = 256
	c := newWordCache(capacity)
	for i := range 10 * capacity {
		w := fmt.Sprintf("word%d", i)
		c.put(w, []int32{int32(i)})
		if ids, ok := c.get(w); !ok || ids[0] != int32(i) {
			t.Fatalf("get(%q) = %v, %v right after put", w, ids, ok)
		}
		if n := c.len(); n > capacity {
			t.Fatalf("cache holds %d words, capacity %d", n, capacity)
		}
	}
	long := strings.Repeat("x", maxCachedWord+1)
	c.put(long, []int32{1})
	if _, ok := c.get(long); ok {
		t.Errorf("a word longer than %d bytes was cached", maxCachedWord)
	}
	var disabled *wordCache = newWordCache(0)
	disabled.put("a", []int32{1})
	if _, ok := disabled.get("a"); ok {
		t.Error("a disabled cache returned a hit")
	}
}

func TestModelImplementsSugarmeModel(t *testing.T) {
	tok := loadBoth(t)[0].tok
	m := tok.model
	// Tokenize takes one byte-level spelled word; offsets are into it.
	toks, err := m.Tokenize(spell(" naïve"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tk := range toks {
		got = append(got, spell(" naïve")[tk.Offsets[0]:tk.Offsets[1]])
		if tk.Value != m.tokens[tk.Id] {
			t.Errorf("token %d value %q, want %q", tk.Id, tk.Value, m.tokens[tk.Id])
		}
	}
	if want := tokensOf(m, m.bpe(" naïve")); !slices.Equal(got, want) {
		t.Errorf("Tokenize offsets cut %q, want %q", got, want)
	}
	if _, err := m.Tokenize("not byte-level: \u4e00"); err == nil {
		t.Error("Tokenize accepted text outside the byte-level alphabet")
	}
	if id, ok := m.TokenToId("Ġthe"); !ok || id != 262 {
		t.Errorf("TokenToId(Ġthe) = %d, %v; want 262", id, ok)
	}
	if s, ok := m.IdToToken(262); !ok || s != "Ġthe" {
		t.Errorf("IdToToken(262) = %q, %v", s, ok)
	}
	if _, ok := m.IdToToken(tok.VocabSize()); ok {
		t.Error("IdToToken accepted an id past the vocab")
	}
	if n := m.GetVocabSize(); n != 50257 {
		t.Errorf("GetVocabSize() = %d, want 50257", n)
	}
	v := m.GetVocab()
	v["mutated"] = 1
	if _, ok := m.vocab["mutated"]; ok {
		t.Error("GetVocab returned the model's own map")
	}
}

func TestModelSaveLoadsBack(t *testing.T) {
	tok := loadBoth(t)[0].tok
	dir := t.TempDir()
	if err := tok.model.Save(dir, "gpt2"); err != nil {
		t.Fatal(err)
	}
	vocab, err := os.ReadFile(filepath.Join(dir, "gpt2-vocab.json"))
	if err != nil {
		t.Fatal(err)
	}
	merges, err := os.ReadFile(filepath.Join(dir, "gpt2-merges.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if want := readFile(t, mergesPath); string(merges) != string(want) {
		t.Error("saved merges.txt differs from the fixture")
	}
	again, err := FromVocabMerges(vocab, merges)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range readCases(t) {
		if got := again.Encode(c.Text); !slices.Equal(got, c.IDs) {
			t.Errorf("%s: after Save, Encode = %v, want %v", c.Name, got, c.IDs)
		}
	}
	if err := tok.model.Save(filepath.Join(dir, "missing", "dir")); err == nil {
		t.Error("Save into a missing directory succeeded")
	}
}
