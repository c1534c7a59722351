package tokenizer

// GPT-2 does not run BPE over raw bytes but over a printable stand-in for
// each byte (openai/gpt-2 encoder.py bytes_to_unicode): bytes that are
// already printable Latin-1 stand for themselves, the other 68 are moved,
// in byte order, to U+0100..U+0143. Vocabulary and merges files are written
// in this alphabet, so "Ġthe" is the token for the bytes " the".
//
// The mapping is computed rather than tabled so that the package has no
// package-level state.

// byteRune returns the byte-level character that stands for b.
func byteRune(b byte) rune {
	switch {
	case b <= ' ': // 0x00..0x20 -> U+0100..U+0120
		return 0x100 + rune(b)
	case b >= 0x7F && b <= 0xA0: // -> U+0121..U+0142
		return rune(b) + 0xA2
	case b == 0xAD: // soft hyphen -> U+0143
		return 0x143
	default:
		return rune(b)
	}
}

// runeByte is the inverse of byteRune; ok is false for characters outside
// the byte-level alphabet.
func runeByte(r rune) (b byte, ok bool) {
	switch {
	case r >= '!' && r <= '~', r >= 0xA1 && r <= 0xAC, r >= 0xAE && r <= 0xFF:
		return byte(r), true
	case r >= 0x100 && r <= 0x120:
		return byte(r - 0x100), true
	case r >= 0x121 && r <= 0x142:
		return byte(r - 0xA2), true
	case r == 0x143:
		return 0xAD, true
	}
	return 0, false
}

// appendByteLevel appends the byte-level spelling of the raw bytes s.
func appendByteLevel(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		r := byteRune(s[i])
		if r < 0x80 {
			dst = append(dst, byte(r))
		} else { // every stand-in is below U+0800: two UTF-8 bytes
			dst = append(dst, byte(0xC0|r>>6), byte(0x80|r&0x3F))
		}
	}
	return dst
}

// byteLevelWidth is the UTF-8 length of byteRune(b).
func byteLevelWidth(b byte) int {
	if byteRune(b) < 0x80 {
		return 1
	}
	return 2
}

// rawBytes converts a byte-level spelled token back to the bytes it stands
// for; ok is false if any character is outside the byte-level alphabet.
func rawBytes(tok string) ([]byte, bool) {
	raw := make([]byte, 0, len(tok))
	for _, r := range tok {
		b, ok := runeByte(r)
		if !ok {
			return nil, false
		}
		raw = append(raw, b)
	}
	return raw, true
}
