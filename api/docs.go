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
