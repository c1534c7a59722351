package tokenizer

import (
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// words returns the GPT-2 words of s.
func words(s string) []string {
	out := []string{}
	splitWords(s, func(w string) { out = append(out, w) })
	return out
}

func TestSplitWordsFollowsGPT2Pattern(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", []string{}},
		{"Hello world", []string{"Hello", " world"}},
		{"multiple   spaces", []string{"multiple", "  ", " spaces"}},
		{"trailing ", []string{"trailing", " "}},
		{"trailing   ", []string{"trailing", "   "}},
		{"   leading", []string{"  ", " leading"}},
		{"line1\nline2\n\nline4\n", []string{"line", "1", "\n", "line", "2", "\n", "\n", "line", "4", "\n"}},
		{"a\r\nb\r\n", []string{"a", "\r", "\n", "b", "\r\n"}},
		{"end   \n   start", []string{"end", "   \n  ", " start"}},
		{"col1\t\tcol2", []string{"col", "1", "\t", "\t", "col", "2"}},
		{"x \ty", []string{"x", " ", "\t", "y"}},
		{"x \t", []string{"x", " \t"}},
		{"x\t y", []string{"x", "\t", " y"}},
		{"I'm you'll it's they've we'd isn't", []string{"I", "'m", " you", "'ll", " it", "'s", " they", "'ve", " we", "'d", " isn", "'t"}},
		{"DON'T 're 'sam", []string{"DON", "'", "T", " '", "re", " '", "sam"}},
		{"''s ''", []string{"''", "s", " ''"}},
		{"1 12 123abc", []string{"1", " 12", " 123", "abc"}},
		{"$1,234.56", []string{"$", "1", ",", "234", ".", "56"}},
		{"Wait... what?!?! --->", []string{"Wait", "...", " what", "?!?!", " --->"}},
		{"non\u00a0breaking and\u00a0\u00a0two", []string{"non", "\u00a0", "breaking", " and", "\u00a0", "\u00a0", "two"}},
		{"ideographic\u3000\u3000space", []string{"ideographic", "\u3000", "\u3000", "space"}},
		{"é vs e\u0301", []string{"é", " vs", " e", "\u0301"}},
		{"東京Moscowмосква123αβγ", []string{"東京Moscowмосква", "123", "αβγ"}},
		{"Ⅻ½", []string{"Ⅻ½"}}, // letter-numbers and fractions are \p{N}
		{"🍕🍕!", []string{"🍕🍕!"}},
		{"<|endoftext|>", []string{"<|", "endoftext", "|>"}},
		{"a\xffb \xfe\xfd", []string{"a", "\xff", "b", " \xfe\xfd"}},
		{"\u2028x", []string{"\u2028", "x"}},
		{"\x1c\x1dx", []string{"\x1c\x1d", "x"}}, // not White_Space (Python's str.isspace disagrees)
	}
	for _, tt := range tests {
		if got := words(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("words(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

// patternOracle splits s by trying the alternatives of GPT-2's pattern in
// order at each position, using Go's regexp for each and explicit
// backtracking for \s+(?!\S). \s is spelled out as Unicode's White_Space
// list (PropList.txt), independently of unicode.IsSpace.
type patternOracle struct {
	alts  []*regexp.Regexp
	space *regexp.Regexp
}

func newPatternOracle() *patternOracle {
	const ws = `\t\n\v\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}`
	o := &patternOracle{space: regexp.MustCompile(`^[` + ws + `]+`)}
	for _, alt := range []string{`'s`, `'t`, `'re`, `'ve`, `'m`, `'ll`, `'d`, ` ?\pL+`, ` ?\pN+`, ` ?[^` + ws + `\pL\pN]+`} {
		o.alts = append(o.alts, regexp.MustCompile(`^(?:`+alt+`)`))
	}
	return o
}

func (o *patternOracle) split(s string) []string {
	out := []string{}
	for i := 0; i < len(s); {
		n := o.match(s[i:])
		out = append(out, s[i:i+n])
		i += n
	}
	return out
}

func (o *patternOracle) match(s string) int {
	for _, re := range o.alts {
		if loc := re.FindStringIndex(s); loc != nil && loc[1] > 0 {
			return loc[1]
		}
	}
	run := o.space.FindString(s)
	if run == "" {
		panic("oracle: no alternative matches " + s)
	}
	// \s+(?!\S): from the longest run down, accept the first length
	// followed by the end or by whitespace.
	for n := len(run); n > 0; {
		if n == len(s) || o.space.MatchString(s[n:]) {
			return n
		}
		_, w := utf8.DecodeLastRuneInString(run[:n])
		n -= w
	}
	return len(run) // \s+
}

func TestSplitWordsMatchesPatternOracle(t *testing.T) {
	o := newPatternOracle()
	for _, c := range readCases(t) {
		if got, want := words(c.Text), o.split(c.Text); !slices.Equal(got, want) {
			t.Errorf("%s: words\n got %q\nwant %q", c.Name, got, want)
		}
	}
	pieces := []string{" ", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2029", "\x85",
		"a", "Z", "é", "\u0301", "東", "ß", "1", "²", "½", "٣", "'", "'s", "'ll", "'re", "'x",
		".", "!", "-", "$", "🍕", "\u200d", "\xff", "\xe2\x82", "\U0001F1FA"}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 20000 {
		var b strings.Builder
		for range rng.IntN(12) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		s := b.String()
		if got, want := words(s), o.split(s); !slices.Equal(got, want) {
			t.Fatalf("words(%q)\n got %q\nwant %q", s, got, want)
		}
	}
}

func FuzzSplitWords(f *testing.F) {
	for _, s := range []string{"", "Hello world", "a  \n b", "it's", "\xff 1"} {
		f.Add(s)
	}
	o := newPatternOracle()
	f.Fuzz(func(t *testing.T, s string) {
		got := words(s)
		if strings.Join(got, "") != s {
			t.Fatalf("words(%q) = %q do not concatenate back", s, got)
		}
		if want := o.split(s); !slices.Equal(got, want) {
			t.Fatalf("words(%q)\n got %q\nwant %q", s, got, want)
		}
	})
}
