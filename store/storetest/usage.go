package storetest

import (
	"testing"
	"time"

	"gpt2d/store"
)

var usageCases = []Case{
	{"UsageAggregatesPerUserDayAndKey", func(t *testing.T, db store.Store) {
		day1 := time.Date(2031, 3, 1, 23, 59, 0, 0, time.UTC)
		day2 := day1.Add(2 * time.Minute) // the next UTC day
		one := store.Counts{Requests: 1, PromptTokens: 3, CompletionTokens: 10}
		must(t, db.AddUsage([]store.Usage{
			{Day: day1, UserID: 1, KeyID: 0, Counts: one},
			{Day: day1, UserID: 1, KeyID: 0, Counts: one},
			{Day: day1, UserID: 1, KeyID: 7, Counts: one},
			{Day: day2, UserID: 1, KeyID: 0, Counts: one},
			{Day: day1, UserID: 2, KeyID: 0, Counts: one},
		}))
		must(t, db.AddUsage([]store.Usage{{Day: day1, UserID: 1, KeyID: 7, Counts: one}}))
		must(t, db.AddUsage(nil))

		if n, _ := db.DayTokens(1, day1); n != 4*13 {
			t.Fatalf("user 1 day 1 tokens = %d, want %d", n, 4*13)
		}
		if n, _ := db.DayTokens(1, day2); n != 13 {
			t.Fatalf("user 1 day 2 tokens = %d", n)
		}
		if n, err := db.DayTokens(3, day2); n != 0 || err != nil {
			t.Fatalf("no usage = %d, %v", n, err)
		}
		got, err := db.UsageOf(1, day1, day2)
		if err != nil {
			t.Fatal(err)
		}
		want := []struct {
			day   time.Time
			key   uint64
			count int64
		}{{store.Day(day1), 0, 2}, {store.Day(day1), 7, 2}, {store.Day(day2), 0, 1}}
		if len(got) != len(want) {
			t.Fatalf("records %+v", got)
		}
		for i, w := range want {
			g := got[i]
			if !g.Day.Equal(w.day) || g.Day.Location() != time.UTC || g.KeyID != w.key || g.Requests != w.count ||
				g.UserID != 1 || g.PromptTokens != 3*w.count || g.CompletionTokens != 10*w.count {
				t.Errorf("record %d = %+v, want %+v", i, g, w)
			}
		}
		if only2, _ := db.UsageOf(1, day2, day2); len(only2) != 1 {
			t.Fatalf("day range not applied: %+v", only2)
		}
		all, _ := db.AllUsage(day1, day1)
		if len(all) != 3 || all[0].UserID != 1 || all[2].UserID != 2 {
			t.Fatalf("all usage on day 1: %+v", all)
		}
		if none, err := db.AllUsage(day1.AddDate(1, 0, 0), day1.AddDate(1, 0, 0)); err != nil || none == nil || len(none) != 0 {
			t.Fatalf("no usage = %#v, %v", none, err)
		}
	}},
	{"UsageAddsUpUnderConcurrentFlushes", func(t *testing.T, db store.Store) {
		day := time.Date(2031, 4, 1, 12, 0, 0, 0, time.UTC)
		errs := concurrently(16, func(i int) error {
			// Each flush carries several rows in a different order.
			recs := []store.Usage{
				{Day: day, UserID: uint64(1 + i%2), KeyID: 0, Counts: store.Counts{Requests: 1, CompletionTokens: 5}},
				{Day: day, UserID: 3, KeyID: 1, Counts: store.Counts{Requests: 1, PromptTokens: 1}},
				{Day: day, UserID: uint64(2 - i%2), KeyID: 0, Counts: store.Counts{Requests: 1, CompletionTokens: 5}},
			}
			return db.AddUsage(recs)
		})
		for _, err := range errs {
			must(t, err)
		}
		for user, want := range map[uint64]int64{1: 16 * 5, 2: 16 * 5, 3: 16} {
			if n, _ := db.DayTokens(user, day); n != want {
				t.Errorf("user %d: %d tokens, want %d", user, n, want)
			}
		}
	}},
}
