// Package domain is rdev's core: its models (projects, API keys, scopes), its
// one error type and codes, the ports that adapters implement, and the
// services that use them. It imports the standard library only.
package domain
