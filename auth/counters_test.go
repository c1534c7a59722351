package auth_test

import (
	"testing"

	"gpt2d/auth"
	"gpt2d/auth/counterstest"
)

func TestMemoryCountersConform(t *testing.T) {
	counterstest.Run(t, func(*testing.T) auth.CounterStore { return auth.NewMemoryCounters(0) })
}
