package tokenizer

import (
	"errors"
	"unicode"
	"unicode/utf8"

	sugarme "github.com/sugarme/tokenizer"
	"github.com/sugarme/tokenizer/normalizer"
)

// GPT-2 splits text into words with the regular expression
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// and runs BPE inside each word only. Go's regexp has no look-ahead, so
// nextWord implements the pattern by hand: at each position the
// alternatives are tried in order, as a backtracking engine would.
//
// \s, \p{L} and \p{N} are Unicode White_Space, Letter and Number, which are
// unicode.IsSpace, unicode.IsLetter and unicode.IsNumber. Bytes that are not
// valid UTF-8 (which Python's str can never hold) are one-byte characters of
// the "other" class, like U+FFFD itself, so every input byte lands in
// exactly one word and encoding stays byte-exact.

// Character classes of the pattern. Every character is in exactly one.
const (
	classOther  uint8 = iota // [^\s\p{L}\p{N}]
	classLetter              // \p{L}
	classNumber              // \p{N}
	classSpace               // \s
)

// charAt decodes the character at s[i], treating an invalid byte as a
// one-byte character.
func charAt(s string, i int) (r rune, width int) {
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

// classOf returns the pattern class of r.
func classOf(r rune) uint8 {
	if r < utf8.RuneSelf {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z':
			return classLetter
		case '0' <= r && r <= '9':
			return classNumber
		case r == ' ', '\t' <= r && r <= '\r':
			return classSpace
		}
		return classOther
	}
	switch {
	case unicode.IsLetter(r):
		return classLetter
	case unicode.IsNumber(r):
		return classNumber
	case unicode.IsSpace(r):
		return classSpace
	}
	return classOther
}

// nextWord returns the end of the word that starts at s[i], i < len(s).
func nextWord(s string, i int) int {
	// 's|'t|'re|'ve|'m|'ll|'d (ASCII, case-sensitive)
	if s[i] == '\'' && i+1 < len(s) {
		switch s[i+1] {
		case 's', 't', 'm', 'd':
			return i + 2
		case 'r', 'v':
			if i+2 < len(s) && s[i+2] == 'e' {
				return i + 3
			}
		case 'l':
			if i+2 < len(s) && s[i+2] == 'l' {
				return i + 3
			}
		}
	}

	r, w := charAt(s, i)
	// " ?X+" for X in letters, numbers, other: a single ASCII space is
	// taken along only when the run it prefixes follows right away.
	if r == ' ' && i+1 < len(s) {
		r2, w2 := charAt(s, i+1)
		if c := classOf(r2); c != classSpace {
			return runEnd(s, i+1+w2, c)
		}
	}
	if c := classOf(r); c != classSpace {
		return runEnd(s, i+w, c)
	}

	// Whitespace. \s+(?!\S) takes the whole run if it reaches the end of
	// the text; otherwise it backtracks one character, leaving the last
	// whitespace character to prefix the next word (if it is a space) or
	// to stand alone. A single whitespace character before a non-space
	// fails (?!\S) and falls through to the plain \s+.
	last, j := i, i+w
	for j < len(s) {
		r, w := charAt(s, j)
		if classOf(r) != classSpace {
			break
		}
		last, j = j, j+w
	}
	if j == len(s) || last == i {
		return j
	}
	return last
}

// runEnd returns the end of the run of class c characters starting at i.
func runEnd(s string, i int, c uint8) int {
	for i < len(s) {
		r, w := charAt(s, i)
		if classOf(r) != c {
			break
		}
		i += w
	}
	return i
}

// splitWords calls fn for each word of s in order. The words partition s.
func splitWords(s string, fn func(word string)) {
	for i := 0; i < len(s); {
		j := nextWord(s, i)
		fn(s[i:j])
		i = j
	}
}

// errNormalized is returned by preTokenizer when a split has been changed
// by a normalizer: GPT-2 has none, and the byte-level alignments built here
// assume the split's text is its original text.
var errNormalized = errors.New("GPT-2 byte-level pre-tokenizer needs un-normalized text; remove the normalizer")

// preTokenizer is the GPT-2 pre-tokenizer in sugarme's PreTokenizer form:
// it splits each split into GPT-2 words and spells every word in the
// byte-level alphabet, keeping the offsets into the original text. It holds
// no state and is safe for concurrent use.
type preTokenizer struct{}

var _ sugarme.PreTokenizer = preTokenizer{}

// PreTokenize implements sugarme.PreTokenizer.
func (preTokenizer) PreTokenize(pts *sugarme.PreTokenizedString) (*sugarme.PreTokenizedString, error) {
	var err error
	pts.Split(func(_ int, ns *normalizer.NormalizedString) []sugarme.SplitIdx {
		text := ns.GetNormalized()
		if text != ns.GetOriginal() {
			err = errNormalized
			return []sugarme.SplitIdx{{Normalized: ns}}
		}
		var out []sugarme.SplitIdx
		shift := ns.Shift()
		start := 0
		splitWords(text, func(word string) {
			out = append(out, sugarme.SplitIdx{Normalized: byteLevelWord(word, shift+start)})
			start += len(word)
		})
		return out
	})
	if err != nil {
		return nil, err
	}
	return pts, nil
}

// byteLevelWord builds the NormalizedString for one word: original is the
// word, normalized is its byte-level spelling. Alignments are per character
// (an invalid byte counts as a character), as Hugging Face's ByteLevel
// does, so offsets never point inside a character. shift is the word's
// offset in the whole original text.
func byteLevelWord(word string, shift int) *normalizer.NormalizedString {
	norm := appendByteLevel(make([]byte, 0, 2*len(word)), word)
	alignments := make([][]int, 0, len(norm))
	alignmentsOriginal := make([][]int, 0, len(word))
	for i, n := 0, 0; i < len(word); {
		_, w := charAt(word, i)
		nw := 0
		for k := i; k < i+w; k++ {
			nw += byteLevelWidth(word[k])
		}
		toOriginal, toNormalized := []int{i, i + w}, []int{n, n + nw}
		for k := 0; k < nw; k++ {
			alignments = append(alignments, toOriginal)
		}
		for k := 0; k < w; k++ {
			alignmentsOriginal = append(alignmentsOriginal, toNormalized)
		}
		i, n = i+w, n+nw
	}
	return normalizer.NewNormalizedString(word, string(norm), alignments, alignmentsOriginal, shift)
}
