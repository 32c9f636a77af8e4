package faulttest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// client speaks GraphQL over HTTP to one rdev server as any API client
// does: POST for queries and mutations, SSE for subscriptions.
type client struct {
	url   string // the server's base URL
	token string
}

// gqlErrors are the errors of a GraphQL response.
type gqlErrors []struct {
	Message    string
	Extensions struct{ Code string }
}

// errorCode returns the code of err's first GraphQL error, "" if it has none.
func errorCode(err error) string {
	if e, ok := errors.AsType[gqlErrors](err); ok && len(e) > 0 {
		return e[0].Extensions.Code
	}
	return ""
}

func (e gqlErrors) Error() string {
	msgs := make([]string, len(e))
	for i, x := range e {
		msgs[i] = x.Extensions.Code + ": " + x.Message
	}
	return strings.Join(msgs, "; ")
}

// httpClient has a timeout so that a request to a server stuck on its
// database fails and is retried instead of hanging the test; streams use
// their context instead.
var httpClient = &http.Client{Timeout: 30 * time.Second}

// do POSTs one operation and decodes its data into out.
func (c *client) do(ctx context.Context, query string, vars map[string]any, out any) error {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+"/graphql", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	res, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = res.Body.Close() }()
	var r struct {
		Data   json.RawMessage
		Errors gqlErrors
	}
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil {
		return fmt.Errorf("HTTP %d, not a GraphQL response: %w", res.StatusCode, err)
	}
	if len(r.Errors) > 0 {
		return r.Errors
	}
	return json.Unmarshal(r.Data, out)
}

// execute queues a shell command in the demo project with an idempotency
// token and returns its ID.
func (c *client) execute(ctx context.Context, shell, clientToken string) (string, error) {
	var out struct {
		ExecuteCommand struct{ Command struct{ ID string } }
	}
	err := c.do(ctx, `mutation($s: String!, $t: String!) {
		executeCommand(input: {projectId: "demo", shell: $s, clientToken: $t}) { command { id } } }`,
		map[string]any{"s": shell, "t": clientToken}, &out)
	return out.ExecuteCommand.Command.ID, err
}

// command is a command as the API shows it.
type command struct {
	ID              string
	Status          string
	ExitCode        *int
	Reason          string
	LastSeq         int
	OutputBytes     int
	OutputLostBytes int
	Truncated       bool
	ClientToken     string
}

const commandFields = `id status exitCode reason lastSeq outputBytes outputLostBytes truncated clientToken`

// final reports whether a command has ended.
func (c command) final() bool { return c.Status != "QUEUED" && c.Status != "RUNNING" }

// commands lists every command of the demo project, page by page.
func (c *client) commands(ctx context.Context) ([]command, error) {
	var all []command
	after := ""
	for {
		var out struct {
			Commands struct {
				Nodes    []command
				PageInfo struct {
					HasNextPage bool
					EndCursor   string
				}
			}
		}
		vars := map[string]any{}
		if after != "" {
			vars["after"] = after
		}
		err := c.do(ctx, `query($after: String) { commands(projectId: "demo", first: 100, after: $after) {
			nodes { `+commandFields+` } pageInfo { hasNextPage endCursor } } }`, vars, &out)
		if err != nil {
			return nil, err
		}
		all = append(all, out.Commands.Nodes...)
		if !out.Commands.PageInfo.HasNextPage {
			return all, nil
		}
		after = out.Commands.PageInfo.EndCursor
	}
}

// queue returns how many commands are queued and running.
func (c *client) queue(ctx context.Context) (queued, running int, err error) {
	var out struct {
		Queue struct{ QueuedTotal, Running int }
	}
	err = c.do(ctx, `{ queue { queuedTotal running } }`, nil, &out)
	return out.Queue.QueuedTotal, out.Queue.Running, err
}

// health returns the status of each of the server's health components, by
// name.
func (c *client) health(ctx context.Context) (map[string]string, error) {
	var out struct {
		Health struct {
			Components []struct{ Name, Status string }
		}
	}
	if err := c.do(ctx, `{ health { components { name status } } }`, nil, &out); err != nil {
		return nil, err
	}
	m := make(map[string]string, len(out.Health.Components))
	for _, ch := range out.Health.Components {
		m[ch.Name] = ch.Status
	}
	return m, nil
}

// get GETs one of the server's plain HTTP endpoints (/readyz, /metrics) and
// returns the status code and body.
func (c *client) get(ctx context.Context, path string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url+path, nil)
	if err != nil {
		return 0, "", err
	}
	res, err := httpClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = res.Body.Close() }()
	body, err := io.ReadAll(res.Body)
	return res.StatusCode, string(body), err
}

// metric returns the value of an unlabelled sample on /metrics.
func (c *client) metric(ctx context.Context, name string) (float64, error) {
	code, body, err := c.get(ctx, "/metrics")
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("/metrics: HTTP %d", code)
	}
	for l := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("/metrics has no %s", name)
}

// chunk is one OutputChunk of a commandOutput stream.
type chunk struct {
	Seq    int
	Stream string
	Data   string
}

// finished is the CommandFinished that ends a commandOutput stream.
type finished struct {
	Status          string
	ExitCode        *int
	LastSeq         int
	OutputLostBytes int
	Truncated       bool
}

// errNoFinish is a stream that ended without its CommandFinished.
var errNoFinish = errors.New("the stream ended without CommandFinished")

// output follows commandOutput(commandId: id, afterSeq) over SSE, passing
// each chunk to onChunk, until the CommandFinished, which it returns.
func (c *client) output(ctx context.Context, id string, afterSeq int, onChunk func(chunk)) (*finished, error) {
	body, err := json.Marshal(map[string]any{
		"query": `subscription($id: ID!, $after: Int) { commandOutput(commandId: $id, afterSeq: $after) {
			__typename ... on OutputChunk { seq stream data } ... on CommandFinished { status exitCode lastSeq outputLostBytes truncated } } }`,
		"variables": map[string]any{"id": id, "after": afterSeq},
	})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+"/graphql", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+c.token)
	// No client timeout: a stream lasts as long as its command.
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = res.Body.Close() }()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 1024))
		return nil, fmt.Errorf("HTTP %d: %s", res.StatusCode, b)
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue // event names, keep-alives, blank lines
		}
		var ev struct {
			Data struct {
				CommandOutput struct {
					Typename string `json:"__typename"`
					chunk
					finished
				}
			}
			Errors gqlErrors
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return nil, fmt.Errorf("event %q: %w", data, err)
		}
		if len(ev.Errors) > 0 {
			return nil, ev.Errors
		}
		switch e := ev.Data.CommandOutput; e.Typename {
		case "OutputChunk":
			onChunk(e.chunk)
		case "CommandFinished":
			return &e.finished, nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, errNoFinish
}

// follower is a subscriber that follows one command's output to its end,
// resubscribing after the last seq it received whenever its stream breaks.
type follower struct {
	id         string
	chunks     []chunk
	fin        *finished
	reconnects int
	err        error
	done       chan struct{}
	// seen is the highest seq received so far, for watching progress.
	seen atomic.Int64
}

// follow starts a follower of command id through the servers servers
// returns (tried in turn as streams break).
func follow(ctx context.Context, id string, servers func() []*client) *follower {
	f := &follower{id: id, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		last, turn := 0, 0
		_, f.err = retry(ctx, func() error {
			all := servers()
			c := all[turn%len(all)]
			turn++
			fin, err := c.output(ctx, id, last, func(ch chunk) {
				f.chunks = append(f.chunks, ch)
				last = ch.Seq
				f.seen.Store(int64(ch.Seq))
			})
			if err != nil {
				f.reconnects++
				return err
			}
			f.fin = fin
			return nil
		})
	}()
	return f
}

// text returns the data of chunks joined, and how many seqs are missing
// between them and how many repeat or go backwards.
func text(chunks []chunk) (s string, gaps, repeats int) {
	var b strings.Builder
	last := 0
	for _, ch := range chunks {
		switch {
		case ch.Seq <= last:
			repeats++
			continue
		case ch.Seq > last+1:
			gaps += ch.Seq - last - 1
		}
		last = ch.Seq
		b.WriteString(ch.Data)
	}
	return b.String(), gaps, repeats
}
