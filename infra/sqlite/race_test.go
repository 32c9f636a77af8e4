//go:build race

package sqlite_test

// raceCommands is how many commands TestClaimCommands_Race runs: fewer under
// the race detector, which slows the pure-Go SQLite tenfold.
const raceCommands = 250
