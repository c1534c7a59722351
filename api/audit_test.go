package api

import (
	"encoding/json"
	"net/url"
	"regexp"
	"testing"
	"time"

	"gpt2d/auth"
	"gpt2d/store"
)

// auditPage is one GET /admin/audit page and the next one's path.
func auditPage(t *testing.T, ts *testServer, token, path string) (seqs []uint64, next string) {
	t.Helper()
	r := ts.get(path, token)
	wantStatus(t, r, 200)
	var events []store.Event
	if err := json.Unmarshal(r.body, &events); err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		seqs = append(seqs, e.Seq)
	}
	if m := regexp.MustCompile(`^<([^>]+)>; rel="next"$`).FindStringSubmatch(r.header.Get("Link")); m != nil {
		next = m[1]
	}
	return seqs, next
}

func TestAuditRetentionPrunesOnlineAndPagingSurvivesIt(t *testing.T) {
	const keep = 30
	ts := start(t, func(c *Config, _ *auth.Config) {
		c.AuditRetention = store.AuditRetention{MaxEvents: keep, MaxAge: 24 * time.Hour}
		c.PruneInterval = 20 * time.Millisecond
	})
	admin := ts.admin("root")
	fail := func(n int) { // anonymous failed logins: one audit event each
		for range n {
			wantStatus(t, ts.postForm("/token", url.Values{"username": {"nobody"}, "password": {"wrong-password"}}), 401)
		}
	}
	fail(100)
	// The trail is cut back to the newest events while the server runs.
	waitUntil(t, func() bool {
		first, last, _ := ts.db.AuditBounds()
		return last-first+1 <= keep
	})

	// Page through with events being appended and pruned meanwhile: seqs
	// only ever decrease, nothing repeats, and the walk ends.
	seen := map[uint64]bool{}
	prev := uint64(1 << 62)
	path := "/admin/audit?limit=7"
	for pages := 0; path != ""; pages++ {
		if pages > 50 {
			t.Fatal("paging never ends")
		}
		var seqs []uint64
		seqs, path = auditPage(t, ts, admin, path)
		for _, s := range seqs {
			if s >= prev || seen[s] {
				t.Fatalf("seq %d after %d (seen before: %v)", s, prev, seen[s])
			}
			seen[s], prev = true, s
		}
		fail(5)
		time.Sleep(30 * time.Millisecond) // let the janitor prune under the cursor
	}
	if len(seen) == 0 || len(seen) > keep+60 {
		t.Fatalf("walked %d events", len(seen))
	}

	// Age: events older than MaxAge go too.
	ts.clock.Advance(25 * time.Hour)
	fail(1)
	waitUntil(t, func() bool {
		first, last, _ := ts.db.AuditBounds()
		return first == last
	})
}
