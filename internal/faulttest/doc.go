// Package faulttest is rdev's fault suite: tests that start their own
// PostgreSQL cluster and real rdev servers, break something on purpose (a
// server killed with SIGKILL, the database restarted or paused, the disk
// under SQLite filled), and count
// what clients see afterwards: commands lost or run twice, results and
// output lines wrong or missing, processes left running. Each scenario logs
// its figures in one line.
//
// The tests run only with RDEV_FAULTS=1, as `make faults` sets.
// RDEV_FAULTS_BIN names an rdev binary to test; without it the suite builds
// ./cmd/rdev once.
package faulttest
