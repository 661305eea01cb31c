//! Writes or reads a list of objects on any S3-compatible server and
//! prints latency percentiles and throughput as one JSON line. The cold
//! tier's read benchmark (`scripts/bench-cold`) runs it with the same
//! arguments against billet and against the Garage server billet ships
//! to, so both are read by the same client.
//!
//! s3bench cannot measure these reads: it writes its objects and reads
//! them back in one run, while a cold read needs the objects shipped and
//! evicted and the server restarted in between.
//!
//!     read_bench put|get ENDPOINT BUCKET KEYS_FILE SIZE CONCURRENCY
//!
//! Credentials come from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`,
//! the region from `AWS_REGION`. For `get`, SIZE is the expected length
//! of every object (a mismatch is an error).

use std::sync::Arc;
use std::time::{Duration, Instant};

use billet_remote::{Body, ObjectAttrs, RemoteConfig, StoreKind};
use bytes::Bytes;
use tokio::sync::Mutex;

fn usage() -> ! {
    eprintln!("usage: read_bench put|get ENDPOINT BUCKET KEYS_FILE SIZE CONCURRENCY");
    std::process::exit(2)
}

/// Distinct bytes per key, so a content-addressed server cannot dedup.
fn body(key: &str, size: usize) -> Bytes {
    let mut seed = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    let mut v = Vec::with_capacity(size + 8);
    while v.len() < size {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.extend_from_slice(&seed.to_le_bytes());
    }
    v.truncate(size);
    Bytes::from(v)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, endpoint, bucket, keys_file, size, concurrency] = args.as_slice() else {
        usage()
    };
    let put = match mode.as_str() {
        "put" => true,
        "get" => false,
        _ => usage(),
    };
    let size: usize = size.parse().unwrap_or_else(|_| usage());
    let concurrency: usize = concurrency.parse().unwrap_or_else(|_| usage());
    let keys: Vec<String> = std::fs::read_to_string(keys_file)
        .unwrap_or_else(|e| {
            eprintln!("reading {keys_file}: {e}");
            std::process::exit(2)
        })
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();

    let mut config = RemoteConfig::new(StoreKind::S3 {
        bucket: bucket.clone(),
        endpoint: Some(endpoint.clone()),
        region: std::env::var("AWS_REGION").ok(),
        access_key_id: None,
        secret_access_key: None,
        session_token: None,
        path_style: true,
    });
    config.request_timeout = Duration::from_secs(300);
    config.client_retries = 0;
    let remote = billet_remote::open(&config).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });

    let queue = Arc::new(Mutex::new(keys.clone().into_iter()));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let queue = queue.clone();
        let remote = remote.clone();
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let Some(key) = queue.lock().await.next() else {
                    return Ok::<_, String>(lat);
                };
                let t = Instant::now();
                if put {
                    remote
                        .put(&key, Body::Bytes(body(&key, size)), ObjectAttrs::default())
                        .await
                        .map_err(|e| format!("{key}: {e}"))?;
                } else {
                    let got = remote.get(&key).await.map_err(|e| format!("{key}: {e}"))?;
                    if got.len() != size || got != body(&key, size) {
                        return Err(format!(
                            "{key}: {} bytes, not the {size} written",
                            got.len()
                        ));
                    }
                }
                lat.push(t.elapsed());
            }
        }));
    }
    let mut lat = Vec::new();
    for w in workers {
        match w.await {
            Ok(Ok(l)) => lat.extend(l),
            Ok(Err(e)) => {
                eprintln!("{e}");
                std::process::exit(1)
            }
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1)
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    lat.sort();
    println!(
        "{{\"op\":\"{mode}\",\"ops\":{},\"size\":{size},\"concurrency\":{concurrency},\"secs\":{secs:.3},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3},\"mib_s\":{:.1}}}",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0),
        (lat.len() * size) as f64 / (1 << 20) as f64 / secs,
    );
}
