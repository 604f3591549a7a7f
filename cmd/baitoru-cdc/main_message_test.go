package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/baitoru/baitoru-cdc/connector"
)

// TestUserMessage: the words the code classifies errors with never reach
// the person; the cause and the fix do, and errors.Is still sees them.
func TestUserMessage(t *testing.T) {
	err := fmt.Errorf("publication %q does not exist; create it with `baitoru-cdc setup`, or set source.create: true: %w", "cdc", connector.ErrPermanent)
	wrapped := fmt.Errorf("prepare: %w", err)
	if got, want := userMessage(wrapped), "prepare: publication \"cdc\" does not exist; create it with `baitoru-cdc setup`, or set source.create: true"; got != want {
		t.Errorf("userMessage = %q, want %q", got, want)
	}
	if !errors.Is(wrapped, connector.ErrPermanent) {
		t.Error("the classification is lost")
	}
	if got := userMessage(errors.New("plain")); got != "plain" {
		t.Errorf("userMessage(plain) = %q", got)
	}
}
