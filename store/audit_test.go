package store

import (
	"fmt"
	"sync"
	"testing"
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
