//! Loopback TCP bandwidth, the baseline for `runnel perf consume` (issue: a consumer on the
//! same machine can go no faster than the kernel moves bytes from one socket to another).
//! One connection, one writer thread sending 1 MiB `write`s, one reader thread reading into a
//! 1 MiB buffer, as iperf3 does by default with one stream. Prints MiB/s.
//!
//! Run: `cargo bench --bench loopback` (`RUNNEL_BENCH_MB` to change the bytes sent).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

fn main() {
    let mb: usize = std::env::var("RUNNEL_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4096);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let reader = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0usize;
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) => panic!("read: {e}"),
            }
        }
        total
    });
    let mut s = TcpStream::connect(addr).expect("connect");
    let chunk = vec![0x5au8; 1 << 20];
    let start = Instant::now();
    for _ in 0..mb {
        s.write_all(&chunk).expect("write");
    }
    drop(s);
    let total = reader.join().expect("reader");
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(total, mb << 20);
    println!(
        "loopback: {mb} MiB in {secs:.2} s: {:.1} MiB/s",
        mb as f64 / secs
    );
}
