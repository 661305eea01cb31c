#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

//! Crash test with a real process: a writer appends batches from several
//! tasks and prints each batch id once it is durable; it is SIGKILLed at
//! seeded random moments, and after every kill the log must hold every
//! acknowledged batch and accept appends again.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use billet_block::BlockStore;
use billet_log::{Log, LogConfig, testkit};

const CYCLES: u64 = 24;

#[test]
fn every_acknowledged_batch_survives_kill_9() {
    let seed: u64 = std::env::var("BILLET_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_b111);
    eprintln!("crash test seed {seed} (set BILLET_CRASH_SEED to replay)");
    let mut x = seed | 1;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let dir = tempfile::tempdir().unwrap();
    let mut acked: Vec<u64> = Vec::new();
    for cycle in 0..CYCLES {
        let mut child = Command::new(env!("CARGO_BIN_EXE_billet-log-torture"))
            .arg(dir.path())
            .arg((cycle * 1_000_000).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let opened = Arc::new(Mutex::new(false));
        let reader = {
            let seen = seen.clone();
            let opened = opened.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if line == "open" {
                        *opened.lock().unwrap() = true;
                    } else if let Some(id) = line.strip_prefix("ack ") {
                        seen.lock().unwrap().push(id.parse::<u64>().unwrap());
                    }
                }
            })
        };
        // Wait for the writer to finish recovery, then let it run for a
        // random while before the kill.
        let t = Instant::now();
        while !*opened.lock().unwrap() {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
                panic!("cycle {cycle}: writer exited ({status}) before opening: {err}");
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "cycle {cycle}: open took too long"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(20 + rand() % 300));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let got = std::mem::take(&mut *seen.lock().unwrap());
        assert!(
            !got.is_empty() || cycle > 0,
            "cycle {cycle}: nothing acknowledged"
        );
        acked.extend(got);

        // Sealed segments are hashed by the reads below; skip the open-time
        // scrub here (the final open below does it once).
        let quick = LogConfig {
            verify_sealed_on_open: false,
            ..LogConfig::default()
        };
        let log = Log::open(dir.path(), quick).unwrap();
        for id in &acked {
            let (data, catalog) = testkit::batch(*id);
            for b in data.iter().chain(&catalog) {
                match log.get(b.cid()) {
                    Ok(bytes) => assert_eq!(bytes, b.data()),
                    Err(e) => panic!("cycle {cycle}: acknowledged batch {id} lost block: {e}"),
                }
            }
        }
    }
    assert!(
        acked.len() > 100,
        "only {} batches acknowledged in all",
        acked.len()
    );
    // And appends work on the recovered log.
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let (data, catalog) = testkit::batch(u64::MAX / 2);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(log.append(&data, &catalog))
        .unwrap();
    for b in data.iter().chain(&catalog) {
        assert_eq!(log.get(b.cid()).unwrap(), b.data());
    }
    eprintln!(
        "{} acknowledged batches survived {CYCLES} kills",
        acked.len()
    );
}
