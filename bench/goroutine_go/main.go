// The Go peer of bench_goroutine: a net/http/pprof server with N parked
// goroutines (default 100000), and a goroutine that sleeps 1 ms in a loop
// and records how late it wakes, read and reset at /lateness (in ns), the
// same probe the C host runs on its loop. Prints its port, then serves.
package main

import (
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"strconv"
	"sync"
	"time"
)

func park(ch chan struct{}) {
	<-ch
}

func main() {
	n := 100000
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	ch := make(chan struct{})
	for i := 0; i < n; i++ {
		go park(ch)
	}

	var mu sync.Mutex
	var late time.Duration
	go func() {
		last := time.Now()
		for {
			time.Sleep(time.Millisecond)
			now := time.Now()
			d := now.Sub(last) - time.Millisecond
			mu.Lock()
			if d > late {
				late = d
			}
			mu.Unlock()
			last = now
		}
	}()
	http.HandleFunc("/lateness", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		fmt.Fprintf(w, "%d\n", late.Nanoseconds())
		late = 0
		mu.Unlock()
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	http.Serve(ln, nil)
}
