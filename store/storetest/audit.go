package storetest

import (
	"fmt"
	"testing"

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
