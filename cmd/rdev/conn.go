package main

import (
	"github.com/rdev-hq/rdev/client"
)

// connFlags are the flags of every subcommand that talks to a server.
type connFlags struct {
	server, key string
}

func (c *connFlags) register(f *envFlags) {
	f.String(&c.server, "server", "RDEV_SERVER", "http://127.0.0.1:8080", "URL of the rdev server")
	f.Secret(&c.key, "key", "RDEV_KEY", "API key (rdev_…) to send as a bearer token")
}

// client returns a client of the server, with the retries and keep-alives
// the CLI is documented to use (client's defaults).
func (c *connFlags) client() (*client.Client, error) {
	if c.key == "" {
		return nil, usageError("no API key: set RDEV_KEY or pass --key (rdev keys create makes one)")
	}
	cl, err := client.New(c.server, c.key, nil)
	if err != nil {
		return nil, usageError("server: " + err.Error())
	}
	return cl, nil
}
