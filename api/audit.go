package api

import (
	"context"
	"log/slog"

	"github.com/gofiber/fiber/v2"

	"gpt2d/store"
)

// audit records a security-relevant event of request c; see auditEvent.
func (s *Server) audit(c *fiber.Ctx, level slog.Level, action string, actor *store.User, target string, detail map[string]any) {
	s.auditEvent(c.IP(), level, action, actor, target, detail)
}

// auditEvent records a security-relevant event twice: as a structured log
// line and in the store's append-only audit bucket, which admins read
// through GET /admin/audit. detail must never hold a password or prompt
// text. It does not touch the request, so a stream may call it after its
// handler has returned.
func (s *Server) auditEvent(ip string, level slog.Level, action string, actor *store.User, target string, detail map[string]any) {
	e := &store.Event{Time: s.cfg.Now().UTC(), Action: action, Target: target, IP: ip, Detail: detail}
	attrs := []any{"action", action, "ip", e.IP}
	if actor != nil {
		e.Actor = actor.Username
		attrs = append(attrs, "actor", actor.Username, "actor_id", actor.ID)
	}
	if target != "" {
		attrs = append(attrs, "target", target)
	}
	for k, v := range detail {
		attrs = append(attrs, k, v)
	}
	s.log.Log(context.Background(), level, "audit", attrs...)
	if err := s.db.AppendAudit(e); err != nil {
		s.log.Error("audit: store append failed", "action", action, "err", err)
	}
}
