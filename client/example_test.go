package client_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/client"
)

// The examples run against a real rdev server: TestMain builds the binary,
// starts it in embedded mode in a temporary directory, makes an admin key,
// and passes both on as RDEV_SERVER and RDEV_KEY, as a user's shell would.
func TestMain(m *testing.M) {
	stop, err := startServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting rdev for the examples:", err)
		os.Exit(1)
	}
	code := m.Run()
	stop()
	os.Exit(code)
}

// Run a command, stream its output, and exit as it did.
func Example() {
	ctx := context.Background()
	c, err := client.New(os.Getenv("RDEV_SERVER"), os.Getenv("RDEV_KEY"), nil)
	if err != nil {
		log.Fatal(err)
	}
	cmd, err := c.Execute(ctx, client.ExecuteInput{
		ProjectID: "demo",
		Argv:      []string{"sh", "-c", "echo hello; echo world; exit 3"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fin, err := c.Tail(ctx, cmd.ID, client.TailOptions{
		OnChunk: func(ch client.Chunk) error {
			_, err := fmt.Print(ch.Data)
			return err
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(fin.Status, fin.ExitStatus())
	// Output:
	// hello
	// world
	// FAILED 3
}

// Branch on the server's error codes.
func ExampleErrorCode() {
	c, err := client.New(os.Getenv("RDEV_SERVER"), os.Getenv("RDEV_KEY"), nil)
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.Execute(context.Background(), client.ExecuteInput{ProjectID: "no-such-project", Argv: []string{"true"}})
	switch client.ErrorCode(err) {
	case "NOT_FOUND":
		fmt.Println("no such project")
	case "":
		fmt.Println("ran, or failed on the way:", err)
	default:
		fmt.Println("refused:", err)
	}
	// Output: no such project
}

// Cancel a running command; Tail reports how it ended.
func ExampleClient_Cancel() {
	ctx := context.Background()
	c, err := client.New(os.Getenv("RDEV_SERVER"), os.Getenv("RDEV_KEY"), nil)
	if err != nil {
		log.Fatal(err)
	}
	cmd, err := c.Execute(ctx, client.ExecuteInput{ProjectID: "demo", Shell: "echo started; sleep 60"})
	if err != nil {
		log.Fatal(err)
	}
	fin, err := c.Tail(ctx, cmd.ID, client.TailOptions{
		OnChunk: func(ch client.Chunk) error {
			fmt.Print(ch.Data)
			_, err := c.Cancel(ctx, cmd.ID) // it runs: stop it
			return err
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(fin.Status, fin.ExitStatus())
	// Output:
	// started
	// CANCELLED 130
}

// A key for CI that may only read projects, valid for 30 days.
func ExampleClient_CreateKey() {
	ctx := context.Background()
	c, err := client.New(os.Getenv("RDEV_SERVER"), os.Getenv("RDEV_KEY"), nil)
	if err != nil {
		log.Fatal(err)
	}
	key, token, err := c.CreateKey(ctx, client.CreateKeyInput{
		Name: "ci", Scopes: []string{"PROJECTS_READ"}, Expires: 30 * 24 * time.Hour,
	})
	if err != nil {
		log.Fatal(err)
	}
	days := time.Until(*key.ExpiresAt).Round(time.Hour).Hours() / 24
	fmt.Println(key.Name, key.Scopes, key.Status, days, len(token) > 0)

	ci, err := client.New(os.Getenv("RDEV_SERVER"), token, nil)
	if err != nil {
		log.Fatal(err)
	}
	_, err = ci.Execute(ctx, client.ExecuteInput{ProjectID: "demo", Argv: []string{"true"}})
	fmt.Println(client.ErrorCode(err))

	revoked, _, err := c.RevokeKey(ctx, key.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(revoked.Status)
	// Output:
	// ci [PROJECTS_READ] ACTIVE 30 true
	// FORBIDDEN
	// REVOKED
}

var listening = regexp.MustCompile(`listening on (\S+)`)

// startServer builds rdev, starts it and makes a key, setting RDEV_SERVER
// and RDEV_KEY. stop ends the server and removes its files.
func startServer() (stop func(), err error) {
	dir, err := os.MkdirTemp("", "rdev-client-example-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	bin := filepath.Join(dir, "rdev")
	build := exec.Command("go", "build", "-o", bin, "github.com/rdev-hq/rdev/cmd/rdev")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("go build: %w", err)
	}
	env := append(os.Environ(), "DATABASE_URL=", "RDEV_EXECUTOR=local", "LOG_LEVEL=warn", "RDEV_LOG_FORMAT=json",
		"RDEV_DATA_DIR="+filepath.Join(dir, "data"), "RDEV_WORKSPACE="+filepath.Join(dir, "workspace"))
	keys := exec.Command(bin, "keys", "create", "--init", "--json", "--name", "examples", "--admin")
	keys.Env, keys.Stderr = env, os.Stderr
	out, err := keys.Output()
	if err != nil {
		return nil, fmt.Errorf("rdev keys create: %w", err)
	}
	var k struct{ Token string }
	if err := json.Unmarshal(out, &k); err != nil {
		return nil, fmt.Errorf("rdev keys create printed %q: %w", out, err)
	}

	srv := exec.Command(bin, "serve", "--host", "127.0.0.1", "--port", "0")
	srv.Env, srv.Stderr = env, os.Stderr
	pipe, err := srv.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := srv.Start(); err != nil {
		return nil, err
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	select {
	case a := <-addr:
		_ = os.Setenv("RDEV_SERVER", "http://"+a)
		_ = os.Setenv("RDEV_KEY", k.Token)
	case <-time.After(30 * time.Second):
		_ = srv.Process.Kill()
		_ = srv.Wait()
		return nil, fmt.Errorf("rdev serve did not say where it listens within 30s")
	}
	return func() {
		_ = srv.Process.Signal(syscall.SIGTERM)
		_ = srv.Wait()
		_ = os.RemoveAll(dir)
	}, nil
}
