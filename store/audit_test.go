package store

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestAuditAppendsInOrderNewestFirst(t *testing.T) {
	db := openTemp(t)
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := db.AppendAudit(&Event{Time: now0, Action: fmt.Sprintf("a%d", i)}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	all, err := db.ListAudit(0, 100)
	if err != nil || len(all) != 10 {
		t.Fatalf("ListAudit = %d events, %v", len(all), err)
	}
	for i, e := range all {
		if e.Seq != uint64(10-i) {
			t.Fatalf("event %d has seq %d, want %d", i, e.Seq, 10-i)
		}
	}
	page, _ := db.ListAudit(5, 2)
	if len(page) != 2 || page[0].Seq != 4 || page[1].Seq != 3 {
		t.Fatalf("page before 5 = %+v", page)
	}
	page, _ = db.ListAudit(100, 1)
	if len(page) != 1 || page[0].Seq != 10 {
		t.Fatalf("page before 100 = %+v", page)
	}
}

func TestPruneAuditByCountAndAge(t *testing.T) {
	tests := []struct {
		name       string
		retention  AuditRetention
		wantPruned int
		wantFirst  uint64
	}{
		{"count keeps the newest", AuditRetention{MaxEvents: 4}, 6, 7},
		{"age drops the old", AuditRetention{MaxAge: 5*time.Hour + time.Minute}, 4, 5},
		{"the tighter bound wins", AuditRetention{MaxAge: 5*time.Hour + time.Minute, MaxEvents: 8}, 4, 5},
		{"no bound keeps all", AuditRetention{}, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTemp(t)
			for i := range 10 { // event i+1 is 9−i hours old
				db.AppendAudit(&Event{Time: now0.Add(time.Duration(i-9) * time.Hour), Action: "a"})
			}
			n, err := db.PruneAudit(tt.retention, now0)
			if err != nil || n != tt.wantPruned {
				t.Fatalf("pruned %d, %v; want %d", n, err, tt.wantPruned)
			}
			first, last, _ := db.AuditBounds()
			if first != tt.wantFirst || last != 10 {
				t.Fatalf("bounds %d..%d, want %d..10", first, last, tt.wantFirst)
			}
			// Appending goes on after pruning, with fresh sequence numbers.
			e := &Event{Time: now0, Action: "b"}
			db.AppendAudit(e)
			if e.Seq != 11 {
				t.Fatalf("next seq %d", e.Seq)
			}
		})
	}
}

func TestPruneAuditWorksInChunks(t *testing.T) {
	db := openTemp(t)
	const n = pruneChunk*2 + 10
	var wg sync.WaitGroup
	for w := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n / 10 {
				db.AppendAudit(&Event{Time: now0, Action: fmt.Sprint(w)})
			}
		}()
	}
	wg.Wait()
	pruned, err := db.PruneAudit(AuditRetention{MaxEvents: 3}, now0)
	if err != nil || pruned != n-3 {
		t.Fatalf("pruned %d, %v; want %d", pruned, err, n-3)
	}
}
