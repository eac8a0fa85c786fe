//! The crossbeam-channel peer of bench/workloads.cpp: SPEC §9 W1-W4 and
//! crossbeam's channel benchmark matrix, with OS threads (crossbeam's domain)
//! where csp and Go use goroutines. Same loops, sizes, checks and output as
//! the csp and Go programs:
//!
//!     crossbeam_workloads <workload> [n]   prints "<workload> <value> <unit>"
//!     crossbeam_workloads list             the workloads this peer runs
//!
//! W5-W8 (spawning, parking and computing with goroutines) are not what a
//! channel library does, so this peer does not list them; bench/compare
//! shows them as n/a. Each workload checks what it received and exits with
//! status 1 if it is wrong.
use crossbeam_channel::{bounded, select, Receiver, Select, Sender};
use std::process::exit;
use std::thread;
use std::time::Instant;

type Msg = i64; // 8-byte messages, as in crossbeam's matrix and the csp/Go twins

fn sum_below(n: i64) -> i64 {
    n * (n - 1) / 2
}

/// Nanoseconds per operation since `t0`; exits with status 1 if `ok` is false.
fn per_op(t0: Instant, ops: i64, ok: bool, what: &str) -> f64 {
    let ns = t0.elapsed().as_nanos() as f64 / ops as f64;
    if !ok {
        eprintln!("FAILED: {}", what);
        exit(1);
    }
    ns
}

fn channel(cap: usize) -> (Sender<Msg>, Receiver<Msg>) {
    bounded(cap)
}

// W1: ping-pong over two unbuffered channels. n round trips.
fn pingpong(n: i64) -> f64 {
    let t0 = Instant::now();
    let (ping_tx, ping_rx) = channel(0);
    let (pong_tx, pong_rx) = channel(0);
    let sum = thread::scope(|s| {
        s.spawn(move || {
            for _ in 0..n {
                let v = ping_rx.recv().unwrap();
                pong_tx.send(v).unwrap();
            }
        });
        let pinger = s.spawn(move || {
            let mut sum = 0;
            for i in 0..n {
                ping_tx.send(i).unwrap();
                sum += pong_rx.recv().unwrap();
            }
            sum
        });
        pinger.join().unwrap()
    });
    per_op(t0, n, sum == sum_below(n), "wrong sum")
}

// W2, W3 and the matrix's spsc/mpsc/mpmc: `producers` threads send 0..n-1
// between them; when all are done the channel disconnects (crossbeam's close)
// and `consumers` threads drain it.
fn mpmc(n: i64, cap: usize, producers: i64, consumers: i64) -> f64 {
    let t0 = Instant::now();
    let total: i64 = thread::scope(|s| {
        let (tx, rx) = channel(cap);
        let sums: Vec<_> = (0..consumers)
            .map(|_| {
                let rx = rx.clone();
                s.spawn(move || rx.iter().sum::<i64>())
            })
            .collect();
        drop(rx);
        for p in 0..producers {
            let tx = tx.clone();
            s.spawn(move || {
                for i in n * p / producers..n * (p + 1) / producers {
                    tx.send(i).unwrap();
                }
            });
        }
        drop(tx);
        sums.into_iter().map(|h| h.join().unwrap()).sum()
    });
    per_op(t0, n, total == sum_below(n), "wrong sum")
}

// The matrix's seq: one thread sends n then receives n (capacity n).
fn seq(n: i64, cap: usize) -> f64 {
    let t0 = Instant::now();
    let (tx, rx) = channel(cap);
    for i in 0..n {
        tx.send(i).unwrap();
    }
    let mut sum = 0;
    for _ in 0..n {
        sum += rx.recv().unwrap();
    }
    per_op(t0, n, sum == sum_below(n), "wrong sum")
}

fn channels(cap: usize) -> (Vec<Sender<Msg>>, Vec<Receiver<Msg>>) {
    (0..4).map(|_| channel(cap)).unzip()
}

/// One value from whichever of the 4 channels is ready (a 4-case select, as
/// in the csp and Go twins).
fn recv_any(rxs: &[Receiver<Msg>]) -> Msg {
    select! {
        recv(rxs[0]) -> v => v.unwrap(),
        recv(rxs[1]) -> v => v.unwrap(),
        recv(rxs[2]) -> v => v.unwrap(),
        recv(rxs[3]) -> v => v.unwrap(),
    }
}

// W4a (= bounded0_select_rx) and the matrix's select_rx: one thread selects
// over 4 channels, each fed by its own producer; n messages in all.
fn select_rx(n: i64, cap: usize) -> f64 {
    let t0 = Instant::now();
    let (txs, rxs) = channels(cap);
    let sum = thread::scope(|s| {
        // The producers borrow their senders, so that no channel disconnects
        // (a ready case with an error) before the selector has read n values.
        for (p, tx) in txs.iter().enumerate() {
            let p = p as i64;
            s.spawn(move || {
                for i in n * p / 4..n * (p + 1) / 4 {
                    tx.send(i).unwrap();
                }
            });
        }
        let mut sum = 0;
        for _ in 0..n {
            sum += recv_any(&rxs);
        }
        sum
    });
    per_op(t0, n, sum == sum_below(n), "wrong sum")
}

// The matrix's select_both: 4 producers each select-send n/4 values over the 4
// channels, 4 consumers each select-receive n/4 values from them.
fn select_both(n: i64, cap: usize) -> f64 {
    let t0 = Instant::now();
    let (txs, rxs) = channels(cap);
    let total: i64 = thread::scope(|s| {
        for p in 0..4i64 {
            let txs = &txs;
            s.spawn(move || {
                for i in n * p / 4..n * (p + 1) / 4 {
                    let mut sel = Select::new();
                    for tx in txs {
                        sel.send(tx);
                    }
                    let op = sel.select();
                    let k = op.index();
                    op.send(&txs[k], i).unwrap();
                }
            });
        }
        let sums: Vec<_> = (0..4i64)
            .map(|c| {
                let rxs = &rxs;
                s.spawn(move || {
                    let mut sum = 0;
                    for _ in n * c / 4..n * (c + 1) / 4 {
                        sum += recv_any(rxs);
                    }
                    sum
                })
            })
            .collect();
        sums.into_iter().map(|h| h.join().unwrap()).sum()
    });
    per_op(t0, n, total == sum_below(n), "wrong sum")
}

// W4b: in one thread, try_send into a cap-1 channel, then a 4-case select in
// which only that channel is ready. ns per iteration.
fn select_ready(n: i64) -> f64 {
    let t0 = Instant::now();
    let (txs, rxs) = channels(1);
    let mut sum = 0;
    let mut ok = true;
    for i in 0..n {
        ok &= txs[2].try_send(i).is_ok();
        select! {
            recv(rxs[0]) -> _ => ok = false,
            recv(rxs[1]) -> _ => ok = false,
            recv(rxs[2]) -> v => sum += v.unwrap(),
            recv(rxs[3]) -> _ => ok = false,
        }
    }
    per_op(t0, n, ok && sum == sum_below(n), "wrong case or sum")
}

// W4c: ping-pong where the server blocks in a 2-case select (ping or quit).
fn select_blocked(n: i64) -> f64 {
    let t0 = Instant::now();
    let (ping_tx, ping_rx) = channel(0);
    let (pong_tx, pong_rx) = channel(0);
    let (quit_tx, quit_rx) = channel(0);
    let sum = thread::scope(|s| {
        s.spawn(move || loop {
            select! {
                recv(ping_rx) -> v => pong_tx.send(v.unwrap()).unwrap(),
                recv(quit_rx) -> _ => break,
            }
        });
        let client = s.spawn(move || {
            let mut sum = 0;
            for i in 0..n {
                ping_tx.send(i).unwrap();
                sum += pong_rx.recv().unwrap();
            }
            drop(quit_tx); // close: wakes the server's quit case
            sum
        });
        client.join().unwrap()
    });
    per_op(t0, n, sum == sum_below(n), "wrong sum")
}

struct Workload {
    name: String,
    default_n: i64,
    run: Box<dyn Fn(i64) -> f64>,
}

fn workload(name: &str, default_n: i64, run: impl Fn(i64) -> f64 + 'static) -> Workload {
    Workload { name: name.to_string(), default_n, run: Box::new(run) }
}

/// Messages per run of the matrix; crossbeam's own runs use 5M (pass n).
const MATRIX_N: i64 = 500_000;

fn matrix() -> Vec<Workload> {
    let mut v = Vec::new();
    // capacity: Some(c), or None for "bounded" = room for all n messages.
    for (flavour, cap) in [("bounded0", Some(0)), ("bounded1", Some(1)), ("bounded", None)] {
        let c = move |n: i64| cap.unwrap_or(n as usize);
        if cap.is_none() {
            v.push(workload("bounded_seq", MATRIX_N, move |n| seq(n, c(n))));
        }
        v.push(workload(&format!("{flavour}_spsc"), MATRIX_N, move |n| mpmc(n, c(n), 1, 1)));
        v.push(workload(&format!("{flavour}_mpsc"), MATRIX_N, move |n| mpmc(n, c(n), 4, 1)));
        v.push(workload(&format!("{flavour}_mpmc"), MATRIX_N, move |n| mpmc(n, c(n), 4, 4)));
        v.push(workload(&format!("{flavour}_select_rx"), MATRIX_N, move |n| select_rx(n, c(n))));
        v.push(workload(&format!("{flavour}_select_both"), MATRIX_N, move |n| select_both(n, c(n))));
    }
    v
}

fn workloads() -> Vec<Workload> {
    let mut v = vec![
        workload("w1_pingpong", 2_000_000, pingpong),
        workload("w2_spsc_cap0", 4_000_000, |n| mpmc(n, 0, 1, 1)),
        workload("w2_spsc_cap1", 4_000_000, |n| mpmc(n, 1, 1, 1)),
        workload("w2_spsc_cap1024", 10_000_000, |n| mpmc(n, 1024, 1, 1)),
        workload("w3_mpmc_cap0", 4_000_000, |n| mpmc(n, 0, 4, 4)),
        workload("w3_mpmc_cap1024", 10_000_000, |n| mpmc(n, 1024, 4, 4)),
        workload("w4_select_fanin", 2_000_000, |n| select_rx(n, 0)),
        workload("w4_select_ready", 10_000_000, select_ready),
        workload("w4_select_blocked", 2_000_000, select_blocked),
    ];
    v.extend(matrix());
    v
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 2 || args.len() > 3 {
        eprintln!("usage: {} <workload>|list [n]", args[0]);
        exit(2);
    }
    let all = workloads();
    if args[1] == "list" {
        for w in &all {
            println!("{}", w.name);
        }
        return;
    }
    let w = match all.iter().find(|w| w.name == args[1]) {
        Some(w) => w,
        None => {
            eprintln!("unknown workload '{}' (try 'list')", args[1]);
            exit(2);
        }
    };
    let n = match args.get(2) {
        Some(s) => s.parse::<i64>().unwrap_or(0),
        None => w.default_n,
    };
    if n <= 0 {
        eprintln!("n must be positive");
        exit(2);
    }
    let value = (w.run)(n);
    println!("{} {:.2} ns/op", w.name, value);
}
