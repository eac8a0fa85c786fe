// The Go peer of bench/bench_channel.cpp: the same workloads on Go's channels.
// Standard library only. Each workload is run with testing.Benchmark
// -reps times; one b.N iteration is one operation, as in the C++ benchmarks,
// so ns/op compares directly. Prints one line per workload:
//
//	name  median_ns  min_ns  max_ns  reps
//
// Run with GOMAXPROCS set to the number of cores (bench/run_first_numbers.sh
// does): go run . -reps 5
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"testing"
)

// sink keeps results observable so that no loop can be optimised away.
var sink int64

// fail aborts the program: a workload that receives the wrong values
// measures nothing worth printing.
func fail(what string) {
	fmt.Fprintln(os.Stderr, "go peer: "+what)
	os.Exit(1)
}

// Buffered send + recv on one goroutine, as plain channel operations.
func uncontendedBuffered(capacity int) func(*testing.B) {
	return func(b *testing.B) {
		ch := make(chan int, capacity)
		var sum int64
		for i := 0; i < b.N; i++ {
			ch <- i
			v := <-ch
			if v != i {
				fail("buffered: wrong value")
			}
			sum += int64(v)
		}
		if sum != int64(b.N)*int64(b.N-1)/2 {
			fail("buffered: wrong sum")
		}
		sink = sum
	}
}

// The same through the non-blocking forms (select with default), the
// counterpart of try_send/try_recv.
func uncontendedBufferedNonBlocking(capacity int) func(*testing.B) {
	return func(b *testing.B) {
		ch := make(chan int, capacity)
		var sum int64
		for i := 0; i < b.N; i++ {
			select {
			case ch <- i:
			default:
				fail("non-blocking send would block")
			}
			select {
			case v := <-ch:
				if v != i {
					fail("non-blocking: wrong value")
				}
				sum += int64(v)
			default:
				fail("non-blocking recv would block")
			}
		}
		if sum != int64(b.N)*int64(b.N-1)/2 {
			fail("non-blocking: wrong sum")
		}
		sink = sum
	}
}

// Ping-pong over two unbuffered channels; one op = one round trip.
func pingPong(b *testing.B) {
	ping := make(chan int)
	pong := make(chan int)
	echoed := make(chan int64)
	go func() {
		var n int64
		for v := range ping {
			pong <- v + 1
			n++
		}
		echoed <- n
	}()
	x := 0
	for i := 0; i < b.N; i++ {
		ping <- x
		y := <-pong
		if y != x+1 {
			fail("ping-pong: wrong answer")
		}
		x = y
	}
	close(ping)
	if n := <-echoed; n != int64(b.N) || x != b.N {
		fail("ping-pong: wrong number of round trips")
	}
	sink = int64(x)
}

// One producer goroutine, one consumer (the benchmark goroutine); one op =
// one value handed over.
func handoff(capacity int) func(*testing.B) {
	return func(b *testing.B) {
		ch := make(chan int, capacity)
		n := b.N
		go func() {
			for i := 0; i < n; i++ {
				ch <- i
			}
		}()
		var sum int64
		for i := 0; i < n; i++ {
			v := <-ch
			if v != i {
				fail("handoff: out of order")
			}
			sum += int64(v)
		}
		if sum != int64(n)*int64(n-1)/2 {
			fail("handoff: wrong sum")
		}
		sink = sum
	}
}

type workload struct {
	name string
	fn   func(*testing.B)
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func main() {
	testing.Init()
	reps := flag.Int("reps", 5, "repetitions per workload")
	flag.Parse()

	workloads := []workload{
		{"buffered_send_recv/1024", uncontendedBuffered(1024)},
		{"buffered_send_recv_nonblocking/1024", uncontendedBufferedNonBlocking(1024)},
		{"pingpong_unbuffered", pingPong},
		{"handoff_two_goroutines/0", handoff(0)},
		{"handoff_two_goroutines/1", handoff(1)},
	}
	fmt.Printf("# %s GOMAXPROCS=%d, %d reps\n", runtime.Version(), runtime.GOMAXPROCS(0), *reps)
	for _, w := range workloads {
		var ns []float64
		for r := 0; r < *reps; r++ {
			res := testing.Benchmark(w.fn)
			if res.N == 0 {
				fmt.Fprintln(os.Stderr, "go peer: benchmark failed: "+w.name)
				os.Exit(1)
			}
			ns = append(ns, float64(res.T.Nanoseconds())/float64(res.N))
		}
		s := append([]float64(nil), ns...)
		sort.Float64s(s)
		fmt.Printf("%s %.2f %.2f %.2f %d\n", w.name, median(ns), s[0], s[len(s)-1], len(ns))
	}
}
