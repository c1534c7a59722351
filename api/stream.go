package api

import (
	"bufio"
	"encoding/json"
	"net"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"gpt2d/gpt2"
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

// renderer renders one endpoint's answer to a generation: whole, once
// every choice has ended (complete), or as an event stream.
type renderer interface {
	streamRenderer
	complete() any
}

// respond runs the rest of a request whose generation has started: with
// stream, through streamGeneration; else it waits for every choice, has
// finish record the generation, and answers r.complete() — or the first
// choice's error, mapped by mapErr.
func (s *Server) respond(c *fiber.Ctx, gen *generation, r renderer, stream bool, finish func(), mapErr func(error) error) error {
	if stream {
		return s.streamGeneration(c, gen, r, finish, mapErr)
	}
	gen.wait()
	finish()
	if err := gen.err(); err != nil {
		return mapErr(err)
	}
	return c.JSON(r.complete())
}

// streamRenderer writes the events of one endpoint's stream. Each method
// returns the error of a failed write: the client is gone.
type streamRenderer interface {
	// open writes what comes before the first token (OpenAI's echo, or
	// the assistant's role).
	open(w *sseWriter) error
	// chunk writes new tokens of choice i; end writes its end.
	chunk(w *sseWriter, i int, c gpt2.Chunk) error
	end(w *sseWriter, i int, res *gpt2.Result) error
	// fail writes the event that ends a stream cut by err.
	fail(w *sseWriter, err error)
	// close writes what comes after every choice has ended.
	close(w *sseWriter) error
}

// streamGeneration is the one streaming driver of /generate,
// /v1/completions and /v1/chat/completions. It waits for gen's first
// event: an error before any token (a full queue, a shutdown, a timeout)
// is answered with its status through early, after finish has recorded
// the generation. Otherwise it commits to an event stream rendered by r,
// and aborts the generation — freeing its engine slots — as soon as a
// write fails or a choice fails. finish runs once the stream has ended.
func (s *Server) streamGeneration(c *fiber.Ctx, gen *generation, r streamRenderer, finish func(), early func(error) error) error {
	first, _ := gen.next()
	if first.done && first.err != nil {
		gen.abort()
		finish()
		return early(first.err)
	}
	return s.stream(c, func(w *sseWriter) {
		defer finish()
		if r.open(w) != nil {
			gen.abort()
			return
		}
		for ev, ok := first, true; ok; ev, ok = gen.next() {
			var err error
			switch {
			case !ev.done:
				err = r.chunk(w, ev.index, ev.chunk)
			case ev.err != nil:
				r.fail(w, ev.err)
				gen.abort()
				return
			default:
				err = r.end(w, ev.index, ev.res)
			}
			if err != nil {
				gen.abort() // the client is gone: free the slots now
				return
			}
		}
		r.close(w)
	})
}

// sendOpenAIEnd ends an OpenAI stream: a last chunk with the usage and no
// choices when the client asked for it (stream_options.include_usage),
// made by usageChunk, then "data: [DONE]".
func sendOpenAIEnd(w *sseWriter, gen *generation, includeUsage bool, usageChunk func(*usage) any) error {
	if includeUsage {
		if err := w.send("", usageChunk(gen.usage())); err != nil {
			return err
		}
	}
	return w.send("", "[DONE]")
}
