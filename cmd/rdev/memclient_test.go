package main_test

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/gorilla/websocket"
)

// clientMode runs this test binary as the client of a memory benchmark when
// RDEV_BENCH_CLIENT is set: it opens connections to a server in another
// process, so that process's memory holds only the server's side. The
// variable holds "url token n commandID"; an empty commandID opens
// connections that only complete connection_init. It prints "ready" once
// the server has handled every message, then waits for stdin to close.
func clientMode() bool {
	spec := os.Getenv("RDEV_BENCH_CLIENT")
	if spec == "" {
		return false
	}
	f := strings.Fields(spec)
	if err := runClient(f); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	os.Exit(0)
	return true
}

func runClient(f []string) error {
	url, token := f[0], f[1]
	n, _ := strconv.Atoi(f[2])
	id := ""
	if len(f) > 3 {
		id = f[3]
	}
	conns := make([]*websocket.Conn, 0, n)
	d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}}
	for range n {
		c, res, err := d.Dial("ws"+strings.TrimPrefix(url, "http")+"/graphql", nil)
		if err != nil {
			return err
		}
		_ = res.Body.Close()
		_ = c.WriteJSON(map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer " + token}})
		if id != "" {
			_ = c.WriteJSON(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
				"query": `subscription($id: ID!) { commandOutput(commandId: $id) { __typename } }`, "variables": map[string]any{"id": id}}})
		}
		// A ping answered means every message before it was handled.
		_ = c.WriteJSON(map[string]any{"type": "ping"})
		conns = append(conns, c)
	}
	for _, c := range conns {
		for {
			var m struct{ Type string }
			if err := c.ReadJSON(&m); err != nil {
				return err
			}
			if m.Type == "pong" {
				break
			}
		}
	}
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	for _, c := range conns {
		_ = c.Close()
	}
	return nil
}
