package api

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// DefaultBlockedWords returns the words the original service refused, as
// a new slice each time: no caller can change another's defaults.
func DefaultBlockedWords() []string { return []string{"hate", "violence"} }

// Filter finds blocked words in text on word boundaries: "Hate" and
// "violence!" match, "whatever" does not. A word boundary is any character
// that is not a letter, digit or underscore, in any script, or the start
// or end of the text. Words and text are compared after the same
// normalisation (foldText): compatibility forms, invisible format
// characters and case do not hide a word, so "ＨＡＴＥ" and "h\u200bate"
// match "hate".
type Filter struct {
	re *regexp.Regexp // nil: nothing is blocked
}

// foldText is the form the Filter compares: NFKC (fullwidth and other
// compatibility forms become ordinary letters), format characters removed
// (zero-width spaces and joiners, soft hyphens, bidi controls: category
// Cf), then case-folded.
func foldText(s string) string {
	s = norm.NFKC.String(s)
	s = strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Cf, r) {
			return -1
		}
		return r
	}, s)
	return cases.Fold().String(s)
}

// NewFilter compiles a Filter for words (phrases with spaces work too).
func NewFilter(words []string) (*Filter, error) {
	var alts []string
	for _, w := range words {
		if w = strings.TrimSpace(foldText(w)); w != "" {
			alts = append(alts, regexp.QuoteMeta(w))
		}
	}
	if len(alts) == 0 {
		return &Filter{}, nil
	}
	re, err := regexp.Compile(`(?:^|[^\p{L}\p{N}_])(?:` + strings.Join(alts, "|") + `)(?:$|[^\p{L}\p{N}_])`)
	if err != nil {
		return nil, fmt.Errorf("blocked words: %w", err)
	}
	return &Filter{re: re}, nil
}

// Blocked reports whether text contains a blocked word.
func (f *Filter) Blocked(text string) bool { return f.re != nil && f.re.MatchString(foldText(text)) }

// blockedError is the 400 of a prompt the Filter refused: the original
// service's detail, and the setting that decides what is blocked, so an
// operator reading a client's report knows where to look.
func blockedError() *httpError {
	return &httpError{status: fiber.StatusBadRequest, detail: detailBlockedContent, code: "content_filter", param: "prompt",
		extra: map[string]any{"setting": blockedWordsSetting}}
}

// blockedWordsSetting is the gpt2d serve flag holding the blocked words.
const blockedWordsSetting = "--blocked-words"

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
