package api

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// DefaultBlockedWords are the words the original service refused.
var DefaultBlockedWords = []string{"hate", "violence"}

// Filter finds blocked words in text, case-insensitively and on word
// boundaries: "Hate" and "violence!" match, "whatever" does not. A word
// boundary is any character that is not a letter, digit or underscore, in
// any script, or the start or end of the text.
type Filter struct {
	re *regexp.Regexp // nil: nothing is blocked
}

// NewFilter compiles a Filter for words (phrases with spaces work too).
func NewFilter(words []string) (*Filter, error) {
	var alts []string
	for _, w := range words {
		if w = strings.TrimSpace(w); w != "" {
			alts = append(alts, regexp.QuoteMeta(w))
		}
	}
	if len(alts) == 0 {
		return &Filter{}, nil
	}
	re, err := regexp.Compile(`(?i)(?:^|[^\p{L}\p{N}_])(?:` + strings.Join(alts, "|") + `)(?:$|[^\p{L}\p{N}_])`)
	if err != nil {
		return nil, fmt.Errorf("blocked words: %w", err)
	}
	return &Filter{re: re}, nil
}

// Blocked reports whether text contains a blocked word.
func (f *Filter) Blocked(text string) bool { return f.re != nil && f.re.MatchString(text) }

// ReadWords reads a blocked-words file: one word or phrase per line;
// blank lines and lines starting with # are ignored.
func ReadWords(r io.Reader) ([]string, error) {
	words := []string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			words = append(words, line)
		}
	}
	return words, sc.Err()
}
