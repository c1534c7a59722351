package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"gpt2d/auth"
)

// body holds a request's JSON object and collects the field errors found
// while reading it, so one 422 reports all of them, as FastAPI does.
type body struct {
	fields map[string]json.RawMessage
	errs   []fieldError
}

// parseJSON reads the request body as a JSON object. It fails with a 422
// in FastAPI's shape when the content type is not JSON, the body is empty,
// not valid JSON, or not an object.
func parseJSON(c *fiber.Ctx) (*body, error) {
	notObject := invalid(fieldError{Loc: []any{"body"}, Type: "model_attributes_type",
		Msg: "Input should be a valid dictionary or object to extract fields from"})
	if !isJSON(c.Get(fiber.HeaderContentType)) {
		return nil, notObject
	}
	raw := c.Body()
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, invalid(fieldError{Loc: []any{"body"}, Type: "missing", Msg: "Field required"})
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return nil, notObject
		}
		pos := 0
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			pos = int(syn.Offset)
		}
		return nil, invalid(fieldError{Loc: []any{"body", pos}, Type: "json_invalid", Msg: "JSON decode error",
			Ctx: map[string]any{"error": err.Error()}})
	}
	if fields == nil { // the body was "null"
		return nil, notObject
	}
	return &body{fields: fields}, nil
}

func isJSON(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == fiber.MIMEApplicationJSON || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

// err returns the collected field errors as a 422, or nil.
func (b *body) err() error {
	if len(b.errs) == 0 {
		return nil
	}
	return invalid(b.errs...)
}

func (b *body) fail(name, typ, msg string, ctx map[string]any) {
	b.errs = append(b.errs, fieldError{Loc: []any{"body", name}, Type: typ, Msg: msg, Ctx: ctx})
}

// has reports whether the field is present (even as null).
func (b *body) has(name string) bool {
	_, ok := b.fields[name]
	return ok
}

// str reads a string field of minChars..maxChars characters (0: no bound).
// A missing field is an error only when required; then "" is returned.
func (b *body) str(name string, required bool, minChars, maxChars int) string {
	raw, ok := b.fields[name]
	if !ok {
		if required {
			b.fail(name, "missing", "Field required", nil)
		}
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		b.fail(name, "string_type", "Input should be a valid string", nil)
		return ""
	}
	n := utf8.RuneCountInString(s)
	switch {
	case minChars > 0 && n < minChars:
		b.fail(name, "string_too_short", fmt.Sprintf("String should have at least %d character%s", minChars, plural(minChars)),
			map[string]any{"min_length": minChars})
	case maxChars > 0 && n > maxChars:
		b.fail(name, "string_too_long", fmt.Sprintf("String should have at most %d character%s", maxChars, plural(maxChars)),
			map[string]any{"max_length": maxChars})
	}
	return s
}

// integer reads an integer field within [lo, hi], or def when absent.
// Like pydantic's lax mode it accepts 50, 50.0 and "50".
func (b *body) integer(name string, def, lo, hi int) int {
	raw, ok := b.fields[name]
	if !ok {
		return def
	}
	var v any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		b.fail(name, "int_type", "Input should be a valid integer", nil)
		return def
	}
	var n int64
	var err error
	switch v := v.(type) {
	case json.Number:
		n, err = v.Int64()
		if err != nil {
			var f float64
			if f, err = v.Float64(); err == nil && f == float64(int64(f)) {
				n = int64(f)
			} else {
				err = errors.New("fractional")
			}
		}
	case string:
		n, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			b.fail(name, "int_parsing", "Input should be a valid integer, unable to parse string as an integer", nil)
			return def
		}
	default:
		err = errors.New("not a number")
	}
	if err != nil {
		b.fail(name, "int_type", "Input should be a valid integer", nil)
		return def
	}
	return int(checkRange(n, lo, hi, func(typ, msg string, ctx map[string]any) { b.fail(name, typ, msg, ctx) }))
}

// boolean reads an optional boolean field; ok is false when absent.
func (b *body) boolean(name string) (v, ok bool) {
	raw, present := b.fields[name]
	if !present {
		return false, false
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		b.fail(name, "bool_type", "Input should be a valid boolean", nil)
		return false, false
	}
	return v, true
}

// number reads a number field within [lo, hi] (or (lo, hi] when
// loExclusive), or def when absent. Like pydantic's lax mode it accepts
// 0.7 and "0.7".
func (b *body) number(name string, def, lo, hi float64, loExclusive bool) float64 {
	raw, ok := b.fields[name]
	if !ok {
		return def
	}
	var v any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var f float64
	var err error
	if err = d.Decode(&v); err == nil {
		switch v := v.(type) {
		case json.Number:
			f, err = v.Float64()
		case string:
			f, err = strconv.ParseFloat(strings.TrimSpace(v), 64)
		default:
			err = errors.New("not a number")
		}
	}
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		b.fail(name, "float_type", "Input should be a valid number", nil)
		return def
	}
	switch {
	case loExclusive && f <= lo:
		b.fail(name, "greater_than", "Input should be greater than "+formatFloat(lo), map[string]any{"gt": lo})
	case !loExclusive && f < lo:
		b.fail(name, "greater_than_equal", "Input should be greater than or equal to "+formatFloat(lo), map[string]any{"ge": lo})
	case f > hi:
		b.fail(name, "less_than_equal", "Input should be less than or equal to "+formatFloat(hi), map[string]any{"le": hi})
	}
	return f
}

// seed reads an optional unsigned 64-bit integer; nil when absent.
func (b *body) seed(name string) *uint64 {
	raw, ok := b.fields[name]
	if !ok {
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		b.fail(name, "int_type", "Input should be a valid integer", nil)
		return nil
	}
	v, err := strconv.ParseUint(n.String(), 10, 64)
	if err != nil {
		switch {
		case strings.HasPrefix(n.String(), "-"):
			b.fail(name, "greater_than_equal", "Input should be greater than or equal to 0", map[string]any{"ge": 0})
		case strings.ContainsAny(n.String(), ".eE"):
			b.fail(name, "int_type", "Input should be a valid integer", nil)
		default:
			b.fail(name, "less_than_equal", "Input should be less than or equal to 18446744073709551615",
				map[string]any{"le": uint64(math.MaxUint64)})
		}
		return nil
	}
	return &v
}

// stringList reads a field that is a string or a list of strings (as
// OpenAI's stop), of at most maxItems items of 1 to maxBytes bytes each.
func (b *body) stringList(name string, maxItems, maxBytes int) []string {
	raw, ok := b.fields[name]
	if !ok {
		return nil
	}
	var list []string
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		list = []string{one}
	} else if err := json.Unmarshal(raw, &list); err != nil {
		b.fail(name, "list_type", "Input should be a valid string or list of strings", nil)
		return nil
	}
	if len(list) > maxItems {
		b.fail(name, "too_long", fmt.Sprintf("List should have at most %d item%s after validation", maxItems, plural(maxItems)),
			map[string]any{"max_length": maxItems})
		return nil
	}
	for _, s := range list {
		if s == "" || len(s) > maxBytes {
			b.fail(name, "value_error", fmt.Sprintf("Value error, each string must have 1 to %d bytes", maxBytes), nil)
			return nil
		}
	}
	return list
}

// dropNulls forgets fields whose value is null, so that they take their
// defaults: OpenAI clients send null for options they leave unset.
func (b *body) dropNulls() {
	for k, v := range b.fields {
		if string(bytes.TrimSpace(v)) == "null" {
			delete(b.fields, k)
		}
	}
}

func checkRange(n int64, lo, hi int, fail func(typ, msg string, ctx map[string]any)) int64 {
	switch {
	case n < int64(lo):
		fail("greater_than_equal", fmt.Sprintf("Input should be greater than or equal to %d", lo), map[string]any{"ge": lo})
	case n > int64(hi):
		fail("less_than_equal", fmt.Sprintf("Input should be less than or equal to %d", hi), map[string]any{"le": hi})
	}
	return n
}

// queryInt reads an integer query parameter within [lo, hi], or def.
func queryInt(c *fiber.Ctx, name string, def, lo, hi int) (int, error) {
	s := c.Query(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, invalid(fieldError{Loc: []any{"query", name}, Type: "int_parsing",
			Msg: "Input should be a valid integer, unable to parse string as an integer"})
	}
	var fe *fieldError
	checkRange(n, lo, hi, func(typ, msg string, ctx map[string]any) {
		fe = &fieldError{Loc: []any{"query", name}, Type: typ, Msg: msg, Ctx: ctx}
	})
	if fe != nil {
		return 0, invalid(*fe)
	}
	return int(n), nil
}

// pathID reads the positive integer path parameter name.
func pathID(c *fiber.Ctx, name string) (uint64, error) {
	n, err := strconv.ParseUint(c.Params(name), 10, 64)
	if err != nil || n == 0 {
		return 0, invalid(fieldError{Loc: []any{"path", name}, Type: "int_parsing",
			Msg: "Input should be a valid integer, unable to parse string as an integer"})
	}
	return n, nil
}

// msgInvalidUTF8 is the 422 message for text that is not valid UTF-8.
const msgInvalidUTF8 = "Input should be a valid UTF-8 string"

// validText reports whether s is valid UTF-8 without U+FFFD: the JSON
// decoder turns invalid bytes (and lone surrogate escapes) into U+FFFD,
// and credentials must never be silently rewritten.
func validText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, utf8.RuneError)
}

// username reads a new account name: 3–50 characters, valid UTF-8, and
// acceptable as an identity (auth.NormalizeUsername: no invisible or
// direction characters, no spaces, one script).
func (b *body) username(name string) string {
	before := len(b.errs)
	u := b.str(name, true, 3, 50)
	if len(b.errs) > before {
		return u
	}
	_, err := auth.NormalizeUsername(u)
	var ue *auth.UsernameError
	switch {
	case errors.Is(err, auth.ErrInvalidUTF8):
		b.fail(name, "string_unicode", msgInvalidUTF8, nil)
	case errors.As(err, &ue):
		b.fail(name, "value_error", "Value error, "+ue.Error(), nil)
	}
	return u
}

// password reads a password field and checks it against policy for the
// account username ("" when unknown). Messages name the rule, never the
// value.
func (b *body) password(name, username string, policy auth.PasswordPolicy) string {
	before := len(b.errs)
	p := b.str(name, true, 0, 0)
	if len(b.errs) > before { // missing or not a string
		return ""
	}
	var pe *auth.PolicyError
	if err := policy.CheckFor(username, p); errors.As(err, &pe) {
		b.errs = append(b.errs, policyFieldError(name, pe))
	}
	return p
}

func policyFieldError(name string, pe *auth.PolicyError) fieldError {
	fe := fieldError{Loc: []any{"body", name}}
	switch pe.Rule {
	case auth.RuleTooShort:
		fe.Type, fe.Ctx = "string_too_short", map[string]any{"min_length": pe.Limit}
		fe.Msg = fmt.Sprintf("String should have at least %d characters", pe.Limit)
	case auth.RuleTooLong:
		fe.Type, fe.Ctx = "string_too_long", map[string]any{"max_bytes": pe.Limit}
		fe.Msg = fmt.Sprintf("Password should have at most %d bytes", pe.Limit)
	case auth.RuleInvalidUTF8:
		fe.Type, fe.Msg = "string_unicode", msgInvalidUTF8
	default:
		fe.Type = "value_error"
		fe.Msg = "Value error, " + pe.Error()
	}
	return fe
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// formatFloat writes a bound in a message the shortest way (2, 0.5).
func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
