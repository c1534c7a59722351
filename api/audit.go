package api

import (
	"log/slog"

	"github.com/gofiber/fiber/v2"

	"gpt2d/store"
)

// audit records a security-relevant event twice: as a structured log line
// and in the store's append-only audit bucket, which admins read through
// GET /admin/audit. detail must never hold a password or prompt text.
func (s *Server) audit(c *fiber.Ctx, level slog.Level, action string, actor *store.User, target string, detail map[string]any) {
	e := &store.Event{Time: s.cfg.Now().UTC(), Action: action, Target: target, IP: c.IP(), Detail: detail}
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
	s.log.Log(c.UserContext(), level, "audit", attrs...)
	if err := s.db.AppendAudit(e); err != nil {
		s.log.Error("audit: store append failed", "action", action, "err", err)
	}
}
