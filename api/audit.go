package api

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"gpt2d/auth"
	"gpt2d/store"
)

// audit records a security-relevant event of request c; see auditEvent.
// An event made with an API key names the key; every event names the
// request's id.
func (s *Server) audit(c *fiber.Ctx, level slog.Level, action string, actor *store.User, target string, detail map[string]any) {
	k, id := currentKey(c), requestID(c)
	if k != nil || id != "" {
		d := make(map[string]any, len(detail)+2)
		for key, v := range detail {
			d[key] = v
		}
		if k != nil {
			// As generation events do. Key management needs a session, so
			// no event both names a managed key and is made with one; if
			// one ever did, the managed key keeps key_id.
			if _, taken := d["key_id"]; taken {
				d["via_key_id"] = k.ID
			} else {
				d["key_id"] = k.ID
			}
		}
		if id != "" {
			d["request_id"] = id
		}
		detail = d
	}
	s.auditEvent(s.clientIP(c), level, action, actor, target, detail)
}

// maxLoggedChars bounds every client-supplied string written to the log
// or the audit trail: the registration limit of a username.
const maxLoggedChars = auth.MaxUsernameChars

// truncate cuts s to at most n characters, marking the cut; invalid UTF-8
// is replaced, since the result goes into JSON.
func truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos] + "…"
		}
		i++
	}
	return s
}

// loggableUsername is how a username from a failed login is recorded: an
// account's name as stored, or, when it names no account (it may be a
// password typed into the username field), only its first two characters
// and its length.
func (s *Server) loggableUsername(name string) string {
	if u, err := s.db.UserByUsername(name); err == nil {
		return u.Username
	}
	return fmt.Sprintf("%s (%d characters, no such user)", truncate(name, 2), utf8.RuneCountInString(name))
}

// auditEvent records a security-relevant event twice: as a structured log
// line and in the store's append-only audit bucket, which admins read
// through GET /admin/audit. detail must never hold a password or prompt
// text. It does not touch the request, so a stream may call it after its
// handler has returned.
func (s *Server) auditEvent(ip string, level slog.Level, action string, actor *store.User, target string, detail map[string]any) {
	e := &store.Event{Time: s.cfg.Now().UTC(), Action: action, Target: truncate(target, maxLoggedChars), IP: ip, Detail: detail}
	attrs := []any{"action", action, "ip", e.IP}
	if actor != nil {
		e.Actor = actor.Username
		attrs = append(attrs, "actor", actor.Username, "actor_id", actor.ID)
	}
	if e.Target != "" {
		attrs = append(attrs, "target", e.Target)
	}
	for k, v := range detail {
		attrs = append(attrs, k, v)
	}
	s.log.Log(context.Background(), level, "audit", attrs...)
	if err := s.db.AppendAudit(e); err != nil {
		s.log.Error("audit: store append failed", "action", action, "err", err)
	}
}
