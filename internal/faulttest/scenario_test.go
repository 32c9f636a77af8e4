package faulttest

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun/driver/pgdriver"
)

// figure is one count a scenario reports.
type figure struct {
	name  string
	value int
}

// logFigures prints a scenario's figures on one line, in the order given.
func logFigures(t *testing.T, scenario string, figs ...figure) {
	t.Helper()
	parts := make([]string, len(figs))
	for i, f := range figs {
		parts[i] = fmt.Sprintf("%s=%d", f.name, f.value)
	}
	t.Logf("FIGURES %s: %s", scenario, strings.Join(parts, " "))
}

// waitFor polls cond every 50 ms until it holds, and fails the test if ctx
// ends first; what says what was awaited. cond's last error is reported.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	var last error
	for {
		ok, err := cond()
		if ok {
			return
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v (last error: %v)", what, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// pool is the clients of a deployment's live replicas, one of which can be
// replaced while clients use the pool.
type pool struct {
	mu      sync.Mutex
	clients []*client
}

func newPool(token string, rs ...*replica) *pool {
	p := &pool{}
	for _, r := range rs {
		p.clients = append(p.clients, &client{url: r.url, token: token})
	}
	return p
}

// pick returns the i-th client, round robin.
func (p *pool) pick(i int) *client {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.clients[i%len(p.clients)]
}

// all returns the clients.
func (p *pool) all() []*client {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.clients)
}

// replace points the client of replica old at its replacement repl.
func (p *pool) replace(old, repl *replica) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, c := range p.clients {
		if c.url == old.url {
			p.clients[i] = &client{url: repl.url, token: c.token}
		}
	}
}

// openStore opens the deployment's database itself, for the facts the API
// does not show (which replica ran a command, when each chunk was written).
func openStore(t *testing.T, url string) *sql.DB {
	db := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(url)))
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// complaints reports a scenario's failures of one kind: the first few in
// full, then only how many more there were, so a scenario that goes wrong
// for every one of 1,000 commands stays readable.
type complaints struct {
	t  *testing.T
	mu sync.Mutex
	n  int
}

const complaintsShown = 10

func (c *complaints) errorf(format string, args ...any) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	if c.n <= complaintsShown {
		c.t.Errorf(format, args...)
	}
}

// done reports how many were not shown.
func (c *complaints) done() {
	c.t.Helper()
	if c.n > complaintsShown {
		c.t.Errorf("... and %d more like these", c.n-complaintsShown)
	}
}

// readOutputs reads the stored output of each command through a
// commandOutput subscription from the start, eight at a time, each stream
// retried on another replica if it breaks; the followers are by command ID.
func readOutputs(ctx context.Context, servers *pool, cmds []command) map[string]*follower {
	out := make(map[string]*follower, len(cmds))
	work := make(chan command)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for cmd := range work {
				f := follow(ctx, cmd.ID, servers.all)
				<-f.done
				mu.Lock()
				out[cmd.ID] = f
				mu.Unlock()
			}
		})
	}
	for _, cmd := range cmds {
		work <- cmd
	}
	close(work)
	wg.Wait()
	return out
}
