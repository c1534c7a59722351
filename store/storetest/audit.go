package storetest

import (
	"fmt"
	"testing"
	"time"

	"gpt2d/store"
)

var auditCases = []Case{
	{"AuditAppendsInOrderNewestFirst", func(t *testing.T, db store.Store) {
		errs := concurrently(10, func(i int) error {
			return db.AppendAudit(&store.Event{Time: now0, Action: fmt.Sprintf("a%d", i), Actor: "x", IP: "127.0.0.1",
				Detail: map[string]any{"n": float64(i)}})
		})
		for _, err := range errs {
			must(t, err)
		}
		all, err := db.ListAudit(0, 100)
		if err != nil || len(all) != 10 {
			t.Fatalf("ListAudit = %d events, %v", len(all), err)
		}
		first := all[9].Seq
		for i, e := range all {
			if e.Seq != first+uint64(9-i) {
				t.Fatalf("event %d has seq %d, want %d", i, e.Seq, first+uint64(9-i))
			}
			if !e.Time.Equal(now0) || e.Actor != "x" || e.IP != "127.0.0.1" || e.Detail["n"] == nil {
				t.Fatalf("event read back as %+v", e)
			}
		}
		page, _ := db.ListAudit(first+5, 2)
		if len(page) != 2 || page[0].Seq != first+4 || page[1].Seq != first+3 {
			t.Fatalf("page before %d = %+v", first+5, page)
		}
		page, _ = db.ListAudit(first+100, 1)
		if len(page) != 1 || page[0].Seq != first+9 {
			t.Fatalf("page before %d = %+v", first+100, page)
		}
		if page, err := db.ListAudit(first, 5); err != nil || page == nil || len(page) != 0 {
			t.Fatalf("page before the first = %#v, %v", page, err)
		}
	}},
}

func appendAged(t *testing.T, db store.Store, n int) (first uint64) {
	t.Helper()
	for i := range n { // event i is n−1−i hours old
		e := &store.Event{Time: now0.Add(time.Duration(i-n+1) * time.Hour), Action: "a"}
		must(t, db.AppendAudit(e))
		if i == 0 {
			first = e.Seq
		}
	}
	return first
}

var auditPruneCases = []Case{
	{"PruneAuditByCountAndAge", func(t *testing.T, db store.Store) {
		tests := []struct {
			retention  store.AuditRetention
			wantPruned int
			wantFirst  uint64 // offset from the first seq
		}{
			{store.AuditRetention{}, 0, 0},
			{store.AuditRetention{MaxEvents: 8}, 2, 2},
			{store.AuditRetention{MaxAge: 5*time.Hour + time.Minute}, 2, 4},
			{store.AuditRetention{MaxAge: 5*time.Hour + time.Minute, MaxEvents: 3}, 3, 7},
		}
		first := appendAged(t, db, 10)
		for _, tt := range tests {
			n, err := db.PruneAudit(tt.retention, now0)
			if err != nil || n != tt.wantPruned {
				t.Fatalf("%+v: pruned %d, %v; want %d", tt.retention, n, err, tt.wantPruned)
			}
			lo, hi, err := db.AuditBounds()
			if err != nil || lo != first+tt.wantFirst || hi != first+9 {
				t.Fatalf("%+v: bounds %d..%d, want %d..%d", tt.retention, lo, hi, first+tt.wantFirst, first+9)
			}
		}
		// Appending goes on with higher sequence numbers; paging below a
		// pruned seq finds nothing rather than failing.
		e := &store.Event{Time: now0, Action: "b"}
		must(t, db.AppendAudit(e))
		if e.Seq <= first+9 {
			t.Fatalf("seq %d after pruning", e.Seq)
		}
		if page, err := db.ListAudit(first+5, 10); err != nil || len(page) != 0 {
			t.Fatalf("page below the pruned = %v, %v", page, err)
		}
	}},
	{"PruneAuditDeletesInChunks", func(t *testing.T, db store.Store) {
		const n = 12_000 // more than one pruning transaction's worth
		errs := concurrently(8, func(w int) error {
			for range n / 8 {
				if err := db.AppendAudit(&store.Event{Time: now0, Action: fmt.Sprint(w)}); err != nil {
					return err
				}
			}
			return nil
		})
		for _, err := range errs {
			must(t, err)
		}
		pruned, err := db.PruneAudit(store.AuditRetention{MaxEvents: 3}, now0)
		if err != nil || pruned != n-3 {
			t.Fatalf("pruned %d, %v; want %d", pruned, err, n-3)
		}
		if lo, hi, _ := db.AuditBounds(); hi-lo != 2 {
			t.Fatalf("bounds %d..%d", lo, hi)
		}
	}},
}
