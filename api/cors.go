package api

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/cors"
)

// cors is Fiber's CORS middleware for Config.AllowedOrigins. It answers
// every preflight (OPTIONS with Access-Control-Request-Method) itself,
// before authentication — browsers send no credentials on a preflight,
// so it must never be a 401 — and grants nothing to an origin that is
// not listed: with no origins configured, browsers may not call the API
// cross-origin at all. Credentials are bearer headers, not cookies, so
// Access-Control-Allow-Credentials is never sent. The request headers a
// preflight asks for are allowed as asked (AllowHeaders empty): client
// libraries send their own (the OpenAI ones send X-Stainless-…), and an
// allowed origin gains nothing from a header the API ignores.
func (s *Server) cors() fiber.Handler {
	cfg := cors.Config{
		AllowMethods:  "GET,POST,PUT,PATCH,DELETE,HEAD",
		ExposeHeaders: "X-Request-ID,Retry-After",
		MaxAge:        600,
	}
	if len(s.cfg.AllowedOrigins) > 0 {
		cfg.AllowOrigins = strings.Join(s.cfg.AllowedOrigins, ",")
	} else {
		cfg.AllowOriginsFunc = func(string) bool { return false }
	}
	return cors.New(cfg)
}

// checkOrigins validates Config.AllowedOrigins: "*", or origins of the
// form scheme://host[:port] (optionally scheme://*.domain for its
// subdomains), as browsers send them in the Origin header.
func checkOrigins(origins []string) error {
	for _, o := range origins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(strings.Replace(o, "://*.", "://", 1))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return fmt.Errorf("api: allowed origin %q is not \"*\" or scheme://host[:port]", o)
		}
	}
	return nil
}
