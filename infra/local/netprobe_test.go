package local_test

import (
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// netProbeEnv, in the environment of this test binary, makes it the
// network probe (netProbe) instead of running tests.
const netProbeEnv = "RDEV_TEST_NETPROBE"

// netProbe does what mode says and prints what it found, a line, exiting
// 0 whatever it found: "dial ADDR" connects to ADDR ("connected" or
// "refused: …"); "serve" listens on 127.0.0.1 and connects to itself
// ("served" or "not served: …"); "up" names the interfaces that are up
// ("up: lo", "up: none").
func netProbe(mode string) int {
	switch verb, arg, _ := strings.Cut(mode, " "); verb {
	case "dial":
		c, err := net.DialTimeout("tcp", arg, 5*time.Second)
		if err != nil {
			fmt.Println("refused:", err)
			return 0
		}
		c.Close()
		fmt.Println("connected")
	case "serve":
		if err := serveSelf(); err != nil {
			fmt.Println("not served:", err)
			return 0
		}
		fmt.Println("served")
	case "up":
		ifs, err := net.Interfaces()
		if err != nil {
			fmt.Println("interfaces:", err)
			return 0
		}
		var up []string
		for _, i := range ifs {
			if i.Flags&net.FlagUp != 0 {
				up = append(up, i.Name)
			}
		}
		if len(up) == 0 {
			up = []string{"none"}
		}
		fmt.Println("up:", strings.Join(up, ","))
	default:
		fmt.Println("unknown probe", mode)
		return 2
	}
	return 0
}

// serveSelf listens on 127.0.0.1, as a dev server would, and sends itself
// a line through that.
func serveSelf() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, _ = io.WriteString(c, "hello\n")
			c.Close()
		}
	}()
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "hello\n" {
		return fmt.Errorf("read %q, %v", b, err)
	}
	return nil
}
