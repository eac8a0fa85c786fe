// Command workloads runs SPEC §9 workloads W1-W8 and crossbeam-channel's benchmark
// matrix exactly as bench/workloads.cpp does for csp: the same loops, sizes, checks
// and output.
//
//	go run . <workload> [n]   prints "<workload> <value> <unit>"
//	go run . list             the workload names, one per line
//
// Run it with GOMAXPROCS = number of cores (Go's default). The clock starts
// inside main, after the runtime has started, as csp's starts inside the main
// goroutine of csp::run. Each workload checks what it received and exits with
// status 1 if it is wrong.
package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

type result struct {
	value float64
	unit  string
	ok    bool
	err   string
}

func perOp(t0 time.Time, ops int64, ok bool, err string) result {
	return result{float64(time.Since(t0).Nanoseconds()) / float64(ops), "ns/op", ok, err}
}

func millis(t0 time.Time, ok bool, err string) result {
	return result{float64(time.Since(t0).Nanoseconds()) / 1e6, "ms", ok, err}
}

func sumBelow(n int64) int64 { return n * (n - 1) / 2 }

// rssBytes is the resident set size, from /proc/self/statm (second field, in pages).
func rssBytes() int64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return -1
	}
	var size, resident int64
	if _, err := fmt.Sscan(string(data), &size, &resident); err != nil {
		return -1
	}
	return resident * int64(os.Getpagesize())
}

// W1: ping-pong over two unbuffered channels. n round trips.

func w1Pinger(ping, pong chan int64, n int64, sum *int64, wg *sync.WaitGroup) {
	var s int64
	for i := int64(0); i < n; i++ {
		ping <- i
		s += <-pong
	}
	*sum = s
	wg.Done()
}

func w1Ponger(ping, pong chan int64, n int64, wg *sync.WaitGroup) {
	for i := int64(0); i < n; i++ {
		v := <-ping
		pong <- v
	}
	wg.Done()
}

func w1Pingpong(n int64) result {
	t0 := time.Now()
	ping := make(chan int64)
	pong := make(chan int64)
	var wg sync.WaitGroup
	var sum int64
	wg.Add(2)
	go w1Ponger(ping, pong, n, &wg)
	go w1Pinger(ping, pong, n, &sum, &wg)
	wg.Wait()
	return perOp(t0, n, sum == sumBelow(n), "wrong sum")
}

// W2 / W3: producers send 0..n-1 between them; the channel is closed once
// they are done and the consumers drain it.

func producer(ch chan int64, from, to int64, wg *sync.WaitGroup) {
	for i := from; i < to; i++ {
		ch <- i
	}
	wg.Done()
}

func consumer(ch chan int64, sum *int64, wg *sync.WaitGroup) {
	var s int64
	for v := range ch {
		s += v
	}
	*sum = s
	wg.Done()
}

func closer(ch chan int64, producers, done *sync.WaitGroup) {
	producers.Wait()
	close(ch)
	done.Done()
}

func mpmc(n int64, capacity, producers, consumers int) result {
	t0 := time.Now()
	ch := make(chan int64, capacity)
	var sent, finished sync.WaitGroup
	var sums [16]int64
	sent.Add(producers)
	finished.Add(consumers + 1)
	for c := 0; c < consumers; c++ {
		go consumer(ch, &sums[c], &finished)
	}
	go closer(ch, &sent, &finished)
	for p := 0; p < producers; p++ {
		go producer(ch, n*int64(p)/int64(producers), n*int64(p+1)/int64(producers), &sent)
	}
	finished.Wait()
	var total int64
	for _, s := range sums {
		total += s
	}
	return perOp(t0, n, total == sumBelow(n), "wrong sum")
}

// W4a and the matrix's select_rx: one consumer selects over 4 channels, each
// fed by its own producer; n messages in all. W4a is select_rx at capacity 0.

func w4Feeder(ch chan int64, from, to int64) {
	for i := from; i < to; i++ {
		ch <- i
	}
}

// w4Selector receives count values from whichever of the 4 channels is ready.
func w4Selector(chs [4]chan int64, count int64, sum *int64, wg *sync.WaitGroup) {
	var s int64
	for i := int64(0); i < count; i++ {
		select {
		case v := <-chs[0]:
			s += v
		case v := <-chs[1]:
			s += v
		case v := <-chs[2]:
			s += v
		case v := <-chs[3]:
			s += v
		}
	}
	*sum = s
	wg.Done()
}

func makeFour(capacity int) (chs [4]chan int64) {
	for i := range chs {
		chs[i] = make(chan int64, capacity)
	}
	return
}

func selectRx(n int64, capacity int) result {
	t0 := time.Now()
	chs := makeFour(capacity)
	var wg sync.WaitGroup
	var sum int64
	wg.Add(1)
	go w4Selector(chs, n, &sum, &wg)
	for p := 0; p < 4; p++ {
		go w4Feeder(chs[p], n*int64(p)/4, n*int64(p+1)/4)
	}
	wg.Wait()
	return perOp(t0, n, sum == sumBelow(n), "wrong sum")
}

func w4SelectFanin(n int64) result { return selectRx(n, 0) }

// The matrix's select_both: 4 producers each send their quarter of 0..n-1
// with a 4-case send select; 4 consumers each receive a quarter with a 4-case
// receive select.
func selectSender(chs [4]chan int64, from, to int64) {
	for i := from; i < to; i++ {
		select {
		case chs[0] <- i:
		case chs[1] <- i:
		case chs[2] <- i:
		case chs[3] <- i:
		}
	}
}

func selectBoth(n int64, capacity int) result {
	t0 := time.Now()
	chs := makeFour(capacity)
	var wg sync.WaitGroup
	var sums [4]int64
	wg.Add(4)
	for c := int64(0); c < 4; c++ {
		go w4Selector(chs, n*(c+1)/4-n*c/4, &sums[c], &wg)
	}
	for p := int64(0); p < 4; p++ {
		go selectSender(chs, n*p/4, n*(p+1)/4)
	}
	wg.Wait()
	return perOp(t0, n, sums[0]+sums[1]+sums[2]+sums[3] == sumBelow(n), "wrong sum")
}

// The matrix's seq: one goroutine sends n values into a channel with room for
// all of them, then receives them.
func seq(n int64, capacity int) result {
	t0 := time.Now()
	ch := make(chan int64, capacity)
	for i := int64(0); i < n; i++ {
		ch <- i
	}
	var sum int64
	for i := int64(0); i < n; i++ {
		sum += <-ch
	}
	return perOp(t0, n, sum == sumBelow(n), "wrong sum")
}

// W4b: a select over 4 receive cases of which exactly one is ready, in one
// goroutine; the ready channel is refilled with a non-blocking send (Go's
// try_send: a select with a default) each iteration.
func w4SelectReady(n int64) result {
	t0 := time.Now()
	a := make(chan int64, 1)
	b := make(chan int64, 1)
	c := make(chan int64, 1)
	d := make(chan int64, 1)
	var sum int64
	ok := true
	for i := int64(0); i < n; i++ {
		select {
		case a <- i:
		default:
			ok = false
		}
		select {
		case <-b:
			ok = false
		case <-c:
			ok = false
		case v := <-a:
			sum += v
		case <-d:
			ok = false
		}
	}
	return perOp(t0, n, ok && sum == sumBelow(n), "wrong case or sum")
}

// W4c: ping-pong where the server blocks in a 2-case select (ping or quit).

func w4Server(ping, quit, pong chan int64, wg *sync.WaitGroup) {
	for {
		select {
		case v := <-ping:
			pong <- v
			continue
		case <-quit:
		}
		break
	}
	wg.Done()
}

func w4Client(ping, quit, pong chan int64, n int64, sum *int64, wg *sync.WaitGroup) {
	var s int64
	for i := int64(0); i < n; i++ {
		ping <- i
		s += <-pong
	}
	close(quit)
	*sum = s
	wg.Done()
}

func w4SelectBlocked(n int64) result {
	t0 := time.Now()
	ping := make(chan int64)
	quit := make(chan int64)
	pong := make(chan int64)
	var wg sync.WaitGroup
	var sum int64
	wg.Add(2)
	go w4Server(ping, quit, pong, &wg)
	go w4Client(ping, quit, pong, n, &sum, &wg)
	wg.Wait()
	return perOp(t0, n, sum == sumBelow(n), "wrong sum")
}

// W5: spawn n goroutines that each call wg.Done().

func w5Child(wg *sync.WaitGroup) { wg.Done() }

func w5Spawn(n int64) result {
	t0 := time.Now()
	var wg sync.WaitGroup
	wg.Add(int(n))
	for i := int64(0); i < n; i++ {
		go w5Child(&wg)
	}
	wg.Wait()
	return perOp(t0, n, true, "")
}

// W6: n goroutines parked on a channel receive; RSS growth per goroutine.

func w6Parked(ch chan int64, started, finished *sync.WaitGroup) {
	started.Done()
	if _, ok := <-ch; !ok {
		finished.Done()
	}
}

func w6ParkedMemory(n int64) result {
	ch := make(chan int64)
	var started, finished sync.WaitGroup
	started.Add(int(n))
	finished.Add(int(n))
	before := rssBytes()
	for i := int64(0); i < n; i++ {
		go w6Parked(ch, &started, &finished)
	}
	started.Wait()
	after := rssBytes()
	close(ch)
	finished.Wait()
	return result{float64(after-before) / float64(n), "bytes/goroutine", before > 0 && after > 0,
		"cannot read /proc/self/statm"}
}

// W7: the concurrent prime sieve, first n primes.

func w7Generate(out chan int64) {
	for i := int64(2); ; i++ {
		out <- i
	}
}

func w7Filter(in, out chan int64, prime int64) {
	for {
		i := <-in
		if i%prime != 0 {
			out <- i
		}
	}
}

func nthPrime(n int64) int64 {
	var count int64
	for c := int64(2); ; c++ {
		prime := true
		for d := int64(2); d*d <= c; d++ {
			if c%d == 0 {
				prime = false
				break
			}
		}
		if prime {
			count++
			if count == n {
				return c
			}
		}
	}
}

func w7Sieve(n int64) result {
	t0 := time.Now()
	ch := make(chan int64)
	go w7Generate(ch)
	var prime int64
	for i := int64(0); i < n; i++ {
		prime = <-ch
		next := make(chan int64)
		go w7Filter(ch, next, prime)
		ch = next
	}
	return millis(t0, prime == nthPrime(n), "wrong last prime")
}

// W8: fib(n) with a goroutine per call; results through the parent's channel.

func w8Fib(n int, out chan int64) {
	if n < 2 {
		out <- int64(n)
		return
	}
	c := make(chan int64, 2)
	go w8Fib(n-1, c)
	go w8Fib(n-2, c)
	a := <-c
	b := <-c
	out <- a + b
}

func fibPlain(n int) int64 {
	var a, b int64 = 0, 1
	for i := 0; i < n; i++ {
		a, b = b, a+b
	}
	return a
}

func w8FibRun(n int64) result {
	t0 := time.Now()
	out := make(chan int64, 1)
	go w8Fib(int(n), out)
	v := <-out
	return millis(t0, v == fibPlain(int(n)), "wrong fib")
}

type workload struct {
	name     string
	defaultN int64
	run      func(int64) result
}

// W8 with a WaitGroup instead of a channel (w8_fib_wg): the children write
// their results into the parent's variables, as in the oneTBB task_group version.

func w8FibWg(n int, out *int64, parent *sync.WaitGroup) {
	if n < 2 {
		*out = int64(n)
	} else {
		var a, b int64
		var children sync.WaitGroup
		children.Add(2)
		go w8FibWg(n-1, &a, &children)
		go w8FibWg(n-2, &b, &children)
		children.Wait()
		*out = a + b
	}
	parent.Done()
}

func w8FibWgRun(n int64) result {
	t0 := time.Now()
	var v int64
	var done sync.WaitGroup
	done.Add(1)
	go w8FibWg(int(n), &v, &done)
	done.Wait()
	return millis(t0, v == fibPlain(int(n)), "wrong fib")
}

// The same default sizes as bench/workloads.cpp.
var workloads = []workload{
	{"w1_pingpong", 2_000_000, w1Pingpong},
	{"w2_spsc_cap0", 4_000_000, func(n int64) result { return mpmc(n, 0, 1, 1) }},
	{"w2_spsc_cap1", 4_000_000, func(n int64) result { return mpmc(n, 1, 1, 1) }},
	{"w2_spsc_cap1024", 10_000_000, func(n int64) result { return mpmc(n, 1024, 1, 1) }},
	{"w3_mpmc_cap0", 4_000_000, func(n int64) result { return mpmc(n, 0, 4, 4) }},
	{"w3_mpmc_cap1024", 10_000_000, func(n int64) result { return mpmc(n, 1024, 4, 4) }},
	{"w4_select_fanin", 2_000_000, w4SelectFanin},
	{"w4_select_ready", 10_000_000, w4SelectReady},
	{"w4_select_blocked", 2_000_000, w4SelectBlocked},
	{"w5_spawn", 1_000_000, w5Spawn},
	{"w6_parked", 1_000_000, w6ParkedMemory},
	{"w7_sieve", 2_000, w7Sieve},
	{"w8_fib", 30, w8FibRun},
	{"w8_fib_wg", 30, w8FibWgRun},
}

// crossbeam-channel's benchmark matrix: {bounded0, bounded1,
// bounded}_{seq, spsc, mpsc, mpmc, select_rx, select_both}, 8-byte messages,
// 4 "threads" (here goroutines); `bounded` has room for all n messages, and
// only it has seq. matrixN messages per run, as in bench/workloads.cpp.
const matrixN = 500_000

func init() {
	for _, f := range []struct {
		name     string
		capacity int // -1: room for all n
	}{{"bounded0", 0}, {"bounded1", 1}, {"bounded", -1}} {
		c := f.capacity
		capFor := func(n int64) int {
			if c < 0 {
				return int(n)
			}
			return c
		}
		if c < 0 {
			workloads = append(workloads, workload{"bounded_seq", matrixN, func(n int64) result { return seq(n, capFor(n)) }})
		}
		workloads = append(workloads,
			workload{f.name + "_spsc", matrixN, func(n int64) result { return mpmc(n, capFor(n), 1, 1) }},
			workload{f.name + "_mpsc", matrixN, func(n int64) result { return mpmc(n, capFor(n), 4, 1) }},
			workload{f.name + "_mpmc", matrixN, func(n int64) result { return mpmc(n, capFor(n), 4, 4) }},
			workload{f.name + "_select_rx", matrixN, func(n int64) result { return selectRx(n, capFor(n)) }},
			workload{f.name + "_select_both", matrixN, func(n int64) result { return selectBoth(n, capFor(n)) }})
	}
}

func main() {
	if len(os.Args) < 2 || len(os.Args) > 3 {
		fmt.Fprintf(os.Stderr, "usage: %s <workload>|list [n]\n", os.Args[0])
		os.Exit(2)
	}
	name := os.Args[1]
	if name == "list" {
		for _, w := range workloads {
			fmt.Println(w.name)
		}
		return
	}
	var w *workload
	for i := range workloads {
		if workloads[i].name == name {
			w = &workloads[i]
		}
	}
	if w == nil {
		fmt.Fprintf(os.Stderr, "unknown workload '%s' (try 'list')\n", name)
		os.Exit(2)
	}
	n := w.defaultN
	if len(os.Args) == 3 {
		v, err := strconv.ParseInt(os.Args[2], 10, 64)
		if err != nil || v <= 0 {
			fmt.Fprintln(os.Stderr, "n must be a positive integer")
			os.Exit(2)
		}
		n = v
	}
	r := w.run(n)
	if !r.ok {
		fmt.Fprintf(os.Stderr, "%s: FAILED: %s\n", w.name, r.err)
		os.Exit(1)
	}
	fmt.Printf("%s %.2f %s\n", w.name, r.value, r.unit)
}
