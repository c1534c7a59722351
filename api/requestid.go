package api

import (
	"crypto/rand"
	"encoding/hex"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// headerRequestID carries a request's id, from the client or a proxy in
// front, and back in every response.
const headerRequestID = "X-Request-ID"

const (
	localsRequestID    = "request_id"
	localsCompletionID = "completion_id"
)

// requestIDs gives every request an id: the client's X-Request-ID when it
// is a sane token (1–128 printable ASCII characters without spaces, so it
// cannot forge log lines), else a fresh random one. The response carries
// it back; the request's log line and audit events name it.
func (s *Server) requestIDs(c *fiber.Ctx) error {
	id := c.Get(headerRequestID)
	if !validRequestID(id) {
		var b [16]byte
		rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	} else {
		id = strings.Clone(id) // fasthttp reuses the header's buffer
	}
	c.Locals(localsRequestID, id)
	c.Set(headerRequestID, id)
	return c.Next()
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

// requestID returns the id of request c ("" outside requestIDs).
func requestID(c *fiber.Ctx) string {
	id, _ := c.Locals(localsRequestID).(string)
	return id
}
