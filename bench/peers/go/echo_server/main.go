// The Go peer of W9: a TCP echo server with one goroutine per connection,
// the idiomatic Go shape. Prints "listening on ADDRESS" first.
package main

import (
	"fmt"
	"net"
	"os"
)

func main() {
	at := "127.0.0.1:0"
	if len(os.Args) > 1 {
		at = os.Args[1]
	}
	l, err := net.Listen("tcp", at)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", l.Addr())
	for {
		c, err := l.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		go func(c net.Conn) {
			defer c.Close()
			buf := make([]byte, 4096)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}(c)
	}
}
