package postgres

import (
	"sync"
	"testing"
	"time"

	"gpt2d/store"
)

func TestQuotaReservationsSettleIntoUsage(t *testing.T) {
	db := openTest(t)
	at := time.Date(2031, 7, 1, 10, 0, 0, 0, time.UTC)
	r, used, ok, err := db.ReserveTokens(1, at, 60, 100, time.Hour)
	if err != nil || !ok || used != 0 || r.Tokens != 60 || r.ID == 0 {
		t.Fatalf("first reservation = %+v, used %d, ok %v, %v", r, used, ok, err)
	}
	r2, used, ok, _ := db.ReserveTokens(1, at, 60, 100, time.Hour)
	if !ok || used != 60 {
		t.Fatalf("second reservation: used %d, ok %v", used, ok)
	}
	if _, used, ok, _ := db.ReserveTokens(1, at, 60, 100, time.Hour); ok || used != 120 {
		t.Fatalf("third reservation past the limit: used %d, ok %v", used, ok)
	}
	// Another user and another day are not affected.
	if _, _, ok, _ := db.ReserveTokens(2, at, 60, 100, time.Hour); !ok {
		t.Fatal("another user refused")
	}
	if _, _, ok, _ := db.ReserveTokens(1, at.AddDate(0, 0, 1), 60, 100, time.Hour); !ok {
		t.Fatal("the next day refused")
	}
	// Settling replaces the reservation by what was spent.
	spent := store.Usage{Day: at, UserID: 1, KeyID: 3, Counts: store.Counts{Requests: 1, PromptTokens: 5, CompletionTokens: 10}}
	if err := db.SettleTokens(r, spent); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.DayTokens(1, at); n != 15 {
		t.Fatalf("spent after settling = %d, want 15", n)
	}
	if _, used, ok, _ := db.ReserveTokens(1, at, 10, 100, time.Hour); !ok || used != 15+60 {
		t.Fatalf("after settling: used %d, ok %v; want 75, true", used, ok)
	}
	if err := db.SettleTokens(r2, store.Usage{Day: at, UserID: 1}); err != nil {
		t.Fatal(err)
	}
	// A request of a user without a quota settles with no reservation.
	if err := db.SettleTokens(store.Reservation{}, store.Usage{Day: at, UserID: 9, Counts: store.Counts{Requests: 1, CompletionTokens: 4}}); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.DayTokens(9, at); n != 4 {
		t.Fatalf("usage settled without reservation = %d", n)
	}
}

func TestQuotaReservationOfADeadReplicaExpires(t *testing.T) {
	db := openTest(t)
	at := time.Now()
	// The first reservation must still be held at the very next call, even
	// on a stalled machine, so it lives seconds, not milliseconds.
	if _, _, ok, _ := db.ReserveTokens(1, at, 100, 100, 3*time.Second); !ok {
		t.Fatal("refused")
	}
	if _, _, ok, _ := db.ReserveTokens(1, at, 100, 100, time.Hour); ok {
		t.Fatal("held reservation not counted")
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, _, ok, _ := db.ReserveTokens(1, at, 100, 100, time.Hour); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("an unsettled reservation never expired")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestQuotaHoldsAcrossReplicas admits 30 concurrent requests of one user
// with a 100-token quota through two stores on one database, each
// reserving 40 tokens and spending them: the day ends under the quota
// plus one reservation.
func TestQuotaHoldsAcrossReplicas(t *testing.T) {
	a, b, _ := replicas(t, time.Second)
	at := time.Now()
	const limit, each = 100, 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted := 0
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db := []*DB{a, b}[i%2]
			r, _, ok, err := db.ReserveTokens(1, at, each, limit, time.Hour)
			if err != nil {
				t.Error(err)
				return
			}
			if !ok {
				return
			}
			mu.Lock()
			admitted++
			mu.Unlock()
			time.Sleep(time.Millisecond) // generating
			if err := db.SettleTokens(r, store.Usage{Day: at, UserID: 1, Counts: store.Counts{Requests: 1, CompletionTokens: each}}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	spent, _ := a.DayTokens(1, at)
	t.Logf("30 concurrent requests over two replicas, quota %d, %d tokens each: %d admitted, %d spent", limit, each, admitted, spent)
	if spent >= limit+each || spent < limit {
		t.Fatalf("spent %d tokens against a quota of %d (one reservation is %d)", spent, limit, each)
	}
}
