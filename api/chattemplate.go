package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/template"
)

// ChatTemplate turns chat messages into the plain text a base model
// continues. GPT-2 was never trained on conversations, so a chat is
// rendered as a transcript whose last line opens the assistant's turn,
// and the reply ends where the model starts the next turn: at the first
// of the template's stop markers (or at <|endoftext|>).
//
// A template file is JSON:
//
//	{"template": "<Go text/template>", "stop": ["\nUser:", ...]}
//
// The template runs over {"Messages": [{"Role": ..., "Content": ...}]}
// (roles system, user and assistant; a developer message counts as
// system) and must end by opening the assistant's turn. A ChatTemplate
// is immutable and safe for concurrent use.
type ChatTemplate struct {
	source string
	tmpl   *template.Template
	stop   []string
}

// defaultChatTemplate is the transcript DefaultChatTemplate renders: the
// system prompt as a paragraph, then one "User: …" or "Assistant: …" line
// per message, then "Assistant:" for the reply.
const defaultChatTemplate = `{{range .Messages}}{{if eq .Role "system"}}{{.Content}}

{{else if eq .Role "user"}}User: {{.Content}}
{{else}}Assistant: {{.Content}}
{{end}}{{end}}Assistant:`

// DefaultChatTemplate returns the built-in template: a plain transcript
// ending in "Assistant:", stopped at the next "User:" or "Assistant:"
// line.
func DefaultChatTemplate() *ChatTemplate {
	t, err := NewChatTemplate(defaultChatTemplate, []string{"\nUser:", "\nAssistant:"})
	if err != nil {
		panic(err) // a constant that parses
	}
	return t
}

// ErrChatTemplate is returned (wrapped) for a chat template that cannot
// be used.
var ErrChatTemplate = errors.New("invalid chat template")

// maxChatStops caps a template's stop markers; with the request's own
// stop strings they must stay within the engine's limit.
const maxChatStops = 8

// NewChatTemplate parses a template (Go text/template syntax) with its
// stop markers. Each marker is 1 to 256 bytes.
func NewChatTemplate(text string, stop []string) (*ChatTemplate, error) {
	tmpl, err := template.New("chat").Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrChatTemplate, err)
	}
	if len(stop) > maxChatStops {
		return nil, fmt.Errorf("%w: %d stop markers, at most %d", ErrChatTemplate, len(stop), maxChatStops)
	}
	for _, s := range stop {
		if s == "" || len(s) > 256 {
			return nil, fmt.Errorf("%w: stop markers must be 1 to 256 bytes", ErrChatTemplate)
		}
	}
	t := &ChatTemplate{source: text, tmpl: tmpl, stop: append([]string(nil), stop...)}
	// A template that fails on a plain conversation fails every request.
	if _, err := t.Render([]ChatMessage{{Role: "system", Content: "s"}, {Role: "user", Content: "u"}, {Role: "assistant", Content: "a"}}); err != nil {
		return nil, err
	}
	return t, nil
}

// LoadChatTemplate reads a template file (see ChatTemplate).
func LoadChatTemplate(path string) (*ChatTemplate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("chat template: %w", err)
	}
	var f struct {
		Template *string  `json:"template"`
		Stop     []string `json:"stop"`
	}
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.DisallowUnknownFields()
	if err := d.Decode(&f); err != nil {
		return nil, fmt.Errorf("chat template %s: %w: %w", path, ErrChatTemplate, err)
	}
	if f.Template == nil {
		return nil, fmt.Errorf("chat template %s: %w: no \"template\"", path, ErrChatTemplate)
	}
	t, err := NewChatTemplate(*f.Template, f.Stop)
	if err != nil {
		return nil, fmt.Errorf("chat template %s: %w", path, err)
	}
	return t, nil
}

// ChatMessage is one message of a conversation.
type ChatMessage struct {
	Role    string
	Content string
}

// Render returns the prompt for messages.
func (t *ChatTemplate) Render(messages []ChatMessage) (string, error) {
	var b strings.Builder
	if err := t.tmpl.Execute(&b, map[string]any{"Messages": messages}); err != nil {
		return "", fmt.Errorf("%w: %w", ErrChatTemplate, err)
	}
	return b.String(), nil
}

// Stop returns the markers that end the assistant's reply.
func (t *ChatTemplate) Stop() []string { return append([]string(nil), t.stop...) }

// Source returns the template's text.
func (t *ChatTemplate) Source() string { return t.source }
