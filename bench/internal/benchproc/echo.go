package benchproc

import (
	"fmt"
	"io"
	"net"
	"sync"
)

// ServeEcho accepts connections on a free loopback port until cl runs; on
// each it sends name and a line break, then echoes what it reads.
func ServeEcho(cl *Cleanups, name string) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					c.Close()
				}()
				fmt.Fprintf(c, "%s\n", name)
				io.Copy(c, c)
			}()
		}
	}()
	cl.Add(func() {
		ln.Close()
		// A connector whose site was killed never closes its side: the
		// kernel did, but one still open through a live site would hold
		// its goroutine until weft closes it.
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String(), nil
}
