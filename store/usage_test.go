package store

import (
	"testing"
	"time"
)

func TestUsageAggregatesPerUserDayAndKey(t *testing.T) {
	db := openTemp(t)
	day1 := time.Date(2031, 3, 1, 23, 59, 0, 0, time.UTC)
	day2 := day1.Add(2 * time.Minute) // the next UTC day
	one := Counts{Requests: 1, PromptTokens: 3, CompletionTokens: 10}
	err := db.AddUsage([]Usage{
		{Day: day1, UserID: 1, KeyID: 0, Counts: one},
		{Day: day1, UserID: 1, KeyID: 0, Counts: one},
		{Day: day1, UserID: 1, KeyID: 7, Counts: one},
		{Day: day2, UserID: 1, KeyID: 0, Counts: one},
		{Day: day1, UserID: 2, KeyID: 0, Counts: one},
	})
	if err != nil {
		t.Fatal(err)
	}
	db.AddUsage([]Usage{{Day: day1, UserID: 1, KeyID: 7, Counts: one}})

	if n, _ := db.DayTokens(1, day1); n != 4*13 {
		t.Fatalf("user 1 day 1 tokens = %d, want %d", n, 4*13)
	}
	if n, _ := db.DayTokens(1, day2); n != 13 {
		t.Fatalf("user 1 day 2 tokens = %d", n)
	}
	got, err := db.UsageOf(1, day1, day2)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		day   time.Time
		key   uint64
		count int64
	}{{Day(day1), 0, 2}, {Day(day1), 7, 2}, {Day(day2), 0, 1}}
	if len(got) != len(want) {
		t.Fatalf("records %+v", got)
	}
	for i, w := range want {
		if !got[i].Day.Equal(w.day) || got[i].KeyID != w.key || got[i].Requests != w.count || got[i].UserID != 1 {
			t.Errorf("record %d = %+v, want %+v", i, got[i], w)
		}
	}
	if only2, _ := db.UsageOf(1, day2, day2); len(only2) != 1 {
		t.Fatalf("day range not applied: %+v", only2)
	}
	all, _ := db.AllUsage(day1, day1)
	if len(all) != 3 || all[2].UserID != 2 {
		t.Fatalf("all usage on day 1: %+v", all)
	}
}
