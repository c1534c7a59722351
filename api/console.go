package api

import (
	"errors"
	"strings"

	"github.com/gofiber/fiber/v2"

	"gpt2d/console"
)

// mountConsole registers the web console: the page at / and /ui/<view>,
// its scripts and styles at /ui/<file>. It must be mounted before
// authenticate: these are the same static files for every caller, served
// without reading any credential, and the console gains no access the
// API does not grant its bearer token.
func (s *Server) mountConsole(app *fiber.App) {
	app.Get("/", s.consolePage)
	app.Get("/ui/:name", s.consoleFile)
}

// isConsoleRoute reports whether a route pattern belongs to the console.
func isConsoleRoute(path string) bool { return path == "/" || strings.HasPrefix(path, "/ui/") }

// pageHeaders are the headers of every HTML page (console and docs) on top
// of securityHeaders: the strict policy, and no sharing of the window or
// the responses with other origins.
func pageHeaders(c *fiber.Ctx) {
	c.Set(fiber.HeaderContentSecurityPolicy, console.ContentSecurityPolicy)
	c.Set("Cross-Origin-Opener-Policy", "same-origin")
	c.Set(fiber.HeaderCrossOriginResourcePolicy, "same-origin")
	c.Set(fiber.HeaderPermissionsPolicy, "camera=(), microphone=(), geolocation=(), payment=(), usb=()")
}

func (s *Server) consolePage(c *fiber.Ctx) error {
	pageHeaders(c)
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Send(s.site.Index())
}

// consoleFile is GET /ui/{name}: a view of the console (the console page)
// or one of its files.
func (s *Server) consoleFile(c *fiber.Ctx) error {
	name := c.Params("name")
	if console.IsView(name) {
		return s.consolePage(c)
	}
	a, err := s.site.Asset(name)
	if errors.Is(err, console.ErrNotFound) {
		return newError(fiber.StatusNotFound, "Not Found")
	}
	if err != nil {
		return err
	}
	pageHeaders(c)
	c.Set(fiber.HeaderContentType, a.ContentType)
	// Same URL, new bytes after an upgrade: cache, but ask every time.
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set(fiber.HeaderETag, a.ETag)
	if c.Get(fiber.HeaderIfNoneMatch) == a.ETag {
		return c.SendStatus(fiber.StatusNotModified)
	}
	return c.Send(a.Body)
}

// docsPage is GET /docs: the API reference, a page of the console's
// files that renders /openapi.json in the browser.
func (s *Server) docsPage(c *fiber.Ctx) error {
	pageHeaders(c)
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Send(s.site.Docs())
}
