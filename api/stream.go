package api

import (
	"bufio"
	"encoding/json"
	"net"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
)

// stream makes the response a Server-Sent Events stream whose events
// write produces. write runs on fasthttp's stream-writer goroutine,
// concurrently with the rest of the handler and after it has returned:
// it must not touch c, and the handler must return right after stream.
//
// fasthttp does not report a client that goes away; a failed flush does,
// so write must stop generating as soon as sseWriter.send fails.
func (s *Server) stream(c *fiber.Ctx, write func(w *sseWriter)) error {
	c.Set(fiber.HeaderContentType, "text/event-stream; charset=utf-8")
	c.Set("X-Accel-Buffering", "no") // ask reverse proxies not to buffer
	conn := c.Context().Conn()
	timeout := s.cfg.WriteTimeout
	log := s.log
	c.Context().SetBodyStreamWriter(func(bw *bufio.Writer) {
		defer func() {
			if r := recover(); r != nil {
				log.Error("stream writer panicked", "panic", r)
			}
		}()
		write(&sseWriter{w: bw, conn: conn, timeout: timeout})
	})
	return nil
}

// sseWriter writes events into a streamed response body.
type sseWriter struct {
	w    *bufio.Writer
	conn net.Conn
	// timeout bounds writing one event. fasthttp sets the connection's
	// write deadline once per response, which would cut off a stream
	// longer than WriteTimeout; send moves it forward instead.
	timeout time.Duration
}

// send writes one event — "event: name" unless name is empty, then data
// as JSON, or as is when it is a string — and flushes it to the client.
// An error means the client is gone or stopped reading.
func (w *sseWriter) send(name string, data any) error {
	var b []byte
	if s, ok := data.(string); ok {
		b = []byte(s)
	} else {
		var err error
		if b, err = json.Marshal(data); err != nil {
			return err
		}
	}
	if name != "" {
		w.w.WriteString("event: " + name + "\n")
	}
	// JSON has no raw newlines, so one data line holds the whole payload.
	w.w.WriteString("data: ")
	w.w.WriteString(strings.ReplaceAll(string(b), "\n", "\ndata: "))
	w.w.WriteString("\n\n")
	if w.conn != nil && w.timeout > 0 {
		w.conn.SetWriteDeadline(time.Now().Add(w.timeout))
	}
	return w.w.Flush()
}

// wantsStream reports whether the client asked for an event stream: the
// body's "stream" field when present, else an Accept of text/event-stream.
func wantsStream(c *fiber.Ctx, b *body) bool {
	if v, ok := b.boolean("stream"); ok {
		return v
	}
	for _, part := range strings.Split(c.Get(fiber.HeaderAccept), ",") {
		mt, _, _ := strings.Cut(part, ";")
		if strings.EqualFold(strings.TrimSpace(mt), "text/event-stream") {
			return true
		}
	}
	return false
}
