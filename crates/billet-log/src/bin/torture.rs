//! Crash-test writer: appends deterministic batches from several tasks and
//! prints `ack <id>` the moment each batch is durable. The crash test kills
//! it with SIGKILL at random moments and checks every acknowledged batch.
//!
//! Usage: billet-log-torture DIR FIRST_ID

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use billet_log::{Log, LogConfig, PlaneConfig, testkit};

const TASKS: u64 = 8;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(first)) = (args.next(), args.next()) else {
        eprintln!("usage: billet-log-torture DIR FIRST_ID");
        std::process::exit(2);
    };
    let first: u64 = first.parse().unwrap_or_else(|_| {
        eprintln!("FIRST_ID must be a number");
        std::process::exit(2)
    });
    // Small segments so that sealing happens under the knife too.
    let config = LogConfig {
        data: PlaneConfig {
            seal_bytes: 512 << 10,
            seal_after: Duration::from_millis(80),
        },
        catalog: PlaneConfig {
            seal_bytes: 16 << 10,
            seal_after: Duration::from_millis(80),
        },
        // The crash test checks every block itself.
        verify_sealed_on_open: false,
        ..LogConfig::default()
    };
    let log = match Log::open(&dir, config) {
        Ok(l) => Arc::new(l),
        Err(e) => {
            eprintln!("open: {e}");
            std::process::exit(1);
        }
    };
    println!("open");
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut k = 0;
            loop {
                let id = first + k * TASKS + t;
                let (data, catalog) = testkit::batch(id);
                if let Err(e) = log.append(&data, &catalog).await {
                    eprintln!("batch {id}: {e}");
                    std::process::exit(1);
                }
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "ack {id}");
                let _ = out.flush();
                k += 1;
                if k % 16 == 0 {
                    let _ = log.seal_due();
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}
