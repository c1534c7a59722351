package postgres

import (
	"testing"

	"gpt2d/auth"
	"gpt2d/auth/counterstest"
)

// TestCountersConformance holds the shared throttle counters to the
// contract the in-process ones meet.
func TestCountersConformance(t *testing.T) {
	counterstest.Run(t, func(t *testing.T) auth.CounterStore { return openTest(t).Counters() })
}
