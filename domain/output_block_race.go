//go:build race

package domain

// poisonReleased overwrites released output blocks in builds with the race
// detector, which is how the tests run.
const poisonReleased = true
