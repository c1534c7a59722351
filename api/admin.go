package api

import (
	"bufio"
	"fmt"
	"log/slog"
	"time"

	"github.com/gofiber/fiber/v2"

	"gpt2d/store"
)

// listAudit is GET /admin/audit?before=&limit=: events newest first;
// pass the last seq seen as before for the next page (the Link header
// with rel="next" names it). Paging is by seq, so it stays valid while
// retention prunes the oldest events: a page ends early, never repeats.
func (s *Server) listAudit(c *fiber.Ctx) error {
	before, err := queryInt(c, "before", 0, 0, 1<<62)
	if err != nil {
		return err
	}
	limit, err := queryInt(c, "limit", 100, 1, 1000)
	if err != nil {
		return err
	}
	events, err := s.db.ListAudit(uint64(before), limit)
	if err != nil {
		return err
	}
	if n := len(events); n == limit && events[n-1].Seq > 1 {
		c.Set(fiber.HeaderLink, fmt.Sprintf(`</admin/audit?before=%d&limit=%d>; rel="next"`, events[n-1].Seq, limit))
	}
	return c.JSON(events)
}

// backup is GET /admin/backup: a consistent snapshot of the store, taken
// in one read transaction while the server keeps serving and writing.
// A PostgreSQL store has no such snapshot: it is backed up with pg_dump,
// and the route says so with a 409 (a client error: nothing to retry).
func (s *Server) backup(c *fiber.Ctx) error {
	snap, ok := s.db.(store.Snapshotter)
	if !ok {
		return newError(fiber.StatusConflict, fmt.Sprintf(
			"The %s store is not backed up through gpt2d: use the database's own tools (pg_dump)", s.db.Kind()))
	}
	s.audit(c, slog.LevelInfo, "admin.backup", currentUser(c), "", nil)
	name := fmt.Sprintf("gpt2d-%s.db", s.cfg.Now().UTC().Format("20060102T150405Z"))
	c.Set(fiber.HeaderContentType, fiber.MIMEOctetStream)
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+name+`"`)
	log := s.log
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		start := time.Now()
		n, err := snap.WriteTo(w)
		if err == nil {
			err = w.Flush()
		}
		if err != nil {
			log.Error("backup stream failed", "bytes", n, "err", err)
			return
		}
		log.Info("backup streamed", "bytes", n, "duration_ms", time.Since(start).Milliseconds())
	})
	return nil
}
