package auth

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/secure/precis"
)

// Username length bounds, in characters after normalisation.
const (
	MinUsernameChars = 3
	MaxUsernameChars = 50
)

// UsernameError reports a username that cannot be registered. Its message
// names the rule broken and is safe to show to the client.
type UsernameError struct{ Rule string }

func (e *UsernameError) Error() string { return "username " + e.Rule }

// ErrInvalidUTF8 reports a username or password that is not valid UTF-8
// (or holds U+FFFD, what decoders turn invalid bytes into).
var ErrInvalidUTF8 = errors.New("auth: not valid UTF-8")

// NormalizeUsername checks a new username as an identity and returns the
// form to store. The policy:
//
//   - PRECIS UsernameCasePreserved (RFC 8265): fullwidth and halfwidth
//     forms are mapped to their ordinary forms ("ａdmin" → "admin"), the
//     result is NFC, and everything outside the IdentifierClass is
//     refused — spaces (so leading, trailing and all-space names),
//     control and format characters (zero-width space, soft hyphen, bidi
//     controls; ZWJ/ZWNJ only where a script needs them), symbols that
//     are not letters or digits, and right-to-left names that break the
//     Bidi Rule;
//   - one script per name, besides digits and punctuation (Common and
//     Inherited): Latin with Cyrillic ("аdmin") is refused. Japanese
//     (Han, Hiragana, Katakana), Chinese (Han, Bopomofo) and Korean (Han,
//     Hangul) are one script each, and may be mixed with Latin;
//   - a Cyrillic or Greek name written only with letters that look
//     Latin ("аррӏе") is refused: it would pass for a Latin one;
//   - 3 to 50 characters.
//
// Uniqueness is decided on the case-folded form (store.FoldUsername,
// PRECIS UsernameCaseMapped), so "Admin" and "ａdmin" are both "admin".
func NormalizeUsername(name string) (string, error) {
	if !utf8.ValidString(name) || strings.ContainsRune(name, utf8.RuneError) {
		return "", ErrInvalidUTF8
	}
	if strings.TrimSpace(name) != name || strings.TrimSpace(name) == "" {
		return "", &UsernameError{Rule: "must not start or end with spaces"}
	}
	out, err := precis.UsernameCasePreserved.String(name)
	if err != nil {
		if strings.IndexFunc(name, unicode.IsSpace) >= 0 {
			return "", &UsernameError{Rule: "must not contain spaces"}
		}
		return "", &UsernameError{Rule: "may hold only letters, digits and punctuation (no invisible, control or direction characters)"}
	}
	if n := utf8.RuneCountInString(out); n < MinUsernameChars || n > MaxUsernameChars {
		return "", &UsernameError{Rule: fmt.Sprintf("must have %d to %d characters", MinUsernameChars, MaxUsernameChars)}
	}
	if err := checkScripts(out); err != nil {
		return "", err
	}
	return out, nil
}

// scriptTables are the scripts a username's letters are classified by;
// a letter in none of them counts as "other", a script of its own.
var scriptTables = []struct {
	name  string
	table *unicode.RangeTable
}{
	{"Latin", unicode.Latin}, {"Cyrillic", unicode.Cyrillic}, {"Greek", unicode.Greek},
	{"Han", unicode.Han}, {"Hiragana", unicode.Hiragana}, {"Katakana", unicode.Katakana},
	{"Hangul", unicode.Hangul}, {"Bopomofo", unicode.Bopomofo}, {"Arabic", unicode.Arabic},
	{"Hebrew", unicode.Hebrew}, {"Armenian", unicode.Armenian}, {"Georgian", unicode.Georgian},
	{"Devanagari", unicode.Devanagari}, {"Thai", unicode.Thai},
}

// allowedMixes are the script sets one name may combine (UTS #39's
// "highly restrictive" level).
var allowedMixes = []map[string]bool{
	{"Latin": true, "Han": true, "Hiragana": true, "Katakana": true},
	{"Latin": true, "Han": true, "Bopomofo": true},
	{"Latin": true, "Han": true, "Hangul": true},
}

// latinLookalikes are the lower-case Cyrillic and Greek letters that look
// like Latin ones (after case mapping, which PRECIS does for uniqueness).
const latinLookalikes = "аԁеһіјӏорԛѕԝхуүсԁɡкмнтвѵ" + // Cyrillic
	"αβεικνορτυχγ" // Greek

func scriptOf(r rune) string {
	if unicode.In(r, unicode.Common, unicode.Inherited) || !unicode.IsLetter(r) {
		return ""
	}
	for _, s := range scriptTables {
		if unicode.Is(s.table, r) {
			return s.name
		}
	}
	return "other"
}

func checkScripts(name string) error {
	scripts := map[string]bool{}
	for _, r := range name {
		if s := scriptOf(r); s != "" {
			scripts[s] = true
		}
	}
	if len(scripts) > 1 {
		ok := false
		for _, mix := range allowedMixes {
			subset := true
			for s := range scripts {
				subset = subset && mix[s]
			}
			ok = ok || subset
		}
		if !ok {
			return &UsernameError{Rule: "must not mix scripts (such as Latin and Cyrillic letters)"}
		}
	}
	if scripts["Cyrillic"] || scripts["Greek"] {
		lookalike := true
		for _, r := range strings.ToLower(name) {
			if unicode.IsLetter(r) && !strings.ContainsRune(latinLookalikes, r) {
				lookalike = false
				break
			}
		}
		if lookalike {
			return &UsernameError{Rule: "must not be written in letters that imitate Latin ones"}
		}
	}
	return nil
}
