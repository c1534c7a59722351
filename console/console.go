// Package console holds the web pages gpt2d serves to browsers, embedded
// in the binary so they work offline and need no build step: the console
// (sign in, a generation playground, the caller's keys and usage, and the
// admin views) and the API reference that renders /openapi.json.
//
// The pages are plain HTML, CSS and JavaScript modules. They are clients
// of the API like any other: every call carries a bearer token held in the
// tab's sessionStorage, never a cookie, so the server's answers depend on
// the token alone and a page of another origin can borrow no credential.
// Whether a view is allowed is decided by the API (403), never by the
// page hiding a button.
//
// Every page is meant to be served with ContentSecurityPolicy: scripts,
// styles and connections from the page's own origin only, no inline
// script or style, no framing, and Trusted Types enforced so a string can
// never reach the DOM as HTML.
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"path"
	"strings"
)

// ContentSecurityPolicy is the policy of every console and docs page: the
// page's own origin for scripts, styles, images and fetches, nothing
// inline, no plugins, no framing, forms that cannot submit anywhere, and
// Trusted Types required so no string can be assigned as HTML.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
	"connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; " +
	"object-src 'none'; require-trusted-types-for 'script'; trusted-types 'none'"

// static holds the files served under /ui/ and the two pages.
//
//go:embed static
var static embed.FS

// ErrNotFound is returned by Site.Asset for a name that is no asset.
var ErrNotFound = errors.New("console: no such asset")

// Asset is one embedded file ready to serve.
type Asset struct {
	Body        []byte
	ContentType string
	// ETag is a strong validator of Body (a quoted hash), so browsers
	// revalidate a cached file instead of downloading it again.
	ETag string
}

// Options configure a Site.
type Options struct {
	// RegistrationOpen makes the sign-in page offer to create an account.
	RegistrationOpen bool
}

// Site is the console and docs, read from the embedded files once. It is
// immutable and safe for concurrent use.
type Site struct {
	index  []byte
	docs   []byte
	assets map[string]Asset
}

// registrationMarker is the attribute index.html carries for the page's
// script to learn whether registration is open.
const registrationMarker = `data-registration="open"`

// New reads the embedded files.
func New(opts Options) (*Site, error) {
	s := &Site{assets: map[string]Asset{}}
	entries, err := fs.ReadDir(static, "static")
	if err != nil {
		return nil, fmt.Errorf("console: read embedded files: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		body, err := fs.ReadFile(static, path.Join("static", name))
		if err != nil {
			return nil, fmt.Errorf("console: read %s: %w", name, err)
		}
		switch name {
		case "index.html":
			if !bytes.Contains(body, []byte(registrationMarker)) {
				return nil, fmt.Errorf("console: index.html lacks %s", registrationMarker)
			}
			if !opts.RegistrationOpen {
				body = bytes.Replace(body, []byte(registrationMarker), []byte(`data-registration="closed"`), 1)
			}
			s.index = body
		case "docs.html":
			s.docs = body
		default:
			sum := sha256.Sum256(body)
			s.assets[name] = Asset{Body: body, ContentType: contentType(name), ETag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		}
	}
	if s.index == nil || s.docs == nil {
		return nil, errors.New("console: index.html or docs.html missing from the embedded files")
	}
	return s, nil
}

// contentType is the media type of an asset by its extension; JavaScript
// modules need text/javascript or the browser refuses them.
func contentType(name string) string {
	switch path.Ext(name) {
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// Index returns the console page, served at / and /ui/<view>.
func (s *Site) Index() []byte { return s.index }

// Docs returns the API reference page, served at /docs.
func (s *Site) Docs() []byte { return s.docs }

// IsView reports whether name is one of the console's views, each served
// at /ui/<view> as the console page, which shows the view its path names.
func IsView(name string) bool {
	switch name {
	case "signin", "playground", "account", "admin":
		return true
	}
	return false
}

// Asset returns the embedded file name (a script, style sheet or image
// served at /ui/<name>), or ErrNotFound.
func (s *Site) Asset(name string) (Asset, error) {
	if strings.Contains(name, "/") {
		return Asset{}, ErrNotFound
	}
	a, ok := s.assets[name]
	if !ok {
		return Asset{}, ErrNotFound
	}
	return a, nil
}

// AssetNames lists the files served under /ui/.
func (s *Site) AssetNames() []string {
	names := make([]string, 0, len(s.assets))
	for n := range s.assets {
		names = append(names, n)
	}
	return names
}
