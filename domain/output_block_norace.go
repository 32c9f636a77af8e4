//go:build !race

package domain

// poisonReleased: see output_block_race.go.
const poisonReleased = false
