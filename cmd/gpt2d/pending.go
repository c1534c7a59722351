package main

import "errors"

// runWeights is a placeholder until cmd/gpt2d/weights.go lands; its owner
// deletes this file.
func runWeights(args []string) error { return errors.New("weights: not built yet") }
