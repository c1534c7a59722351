package api

import (
	_ "embed"

	"github.com/gofiber/fiber/v2"
)

// openAPI is the hand-written OpenAPI 3 description of every route;
// TestOpenAPIDescribesEveryRoute keeps it in step with the router.
//
//go:embed openapi.json
var openAPI []byte

func openAPIDocument(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(openAPI)
}

// docsHTML is the interactive documentation page: Swagger UI, loaded from
// a CDN by the reader's browser, pointed at /openapi.json.
const docsHTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>gpt2d API</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"><noscript>The OpenAPI document is at <a href="/openapi.json">/openapi.json</a>.</noscript></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js" crossorigin="anonymous"></script>
<script>
window.onload = function () {
  window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui"});
};
</script>
</body>
</html>
`

func docsPage(c *fiber.Ctx) error {
	// The page frames nothing and is framed by nothing; it may load the
	// Swagger UI assets and call this origin.
	c.Set(fiber.HeaderContentSecurityPolicy,
		"default-src 'none'; script-src https://cdn.jsdelivr.net 'unsafe-inline'; style-src https://cdn.jsdelivr.net 'unsafe-inline'; img-src 'self' data: https://cdn.jsdelivr.net; connect-src 'self'; frame-ancestors 'none'")
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.SendString(docsHTML)
}
