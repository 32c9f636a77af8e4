//go:build !race

package sqlite_test

// raceCommands is how many commands TestClaimCommands_Race runs.
const raceCommands = 1000
