//! The `billet` command line.

mod admin;
mod auth_limit;
mod config;
mod export;
mod gc;
mod history_api;
mod identity;
mod import;
mod inspect;
mod keys;
mod listener;
mod malloc;
mod metrics;
mod offline;
mod prove;
mod recover;
mod remote_config;
mod request_body;
mod router;
mod serve;
mod status;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "billet",
    version,
    about = "A verifiable, content-addressed S3 gateway"
)]
struct Cli {
    #[command(flatten)]
    overrides: config::Overrides,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve S3 (on 127.0.0.1:9000 by default, data in ./billet-data).
    Serve,
    /// Manage access keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Check that a bucket's index equals its MST at the head and that
    /// every block it references is present and sound. Safe while the
    /// server runs (the log is opened read-only).
    Fsck {
        bucket: String,
        /// Rebuild the index rows from the MST if they differ.
        #[arg(long)]
        repair: bool,
    },
    /// Write a bucket as one CARv1 file rooted at its head commit: the
    /// commit, the MST, every manifest and body (and with --history every
    /// earlier commit its retention keeps). Every link in the file
    /// resolves inside it. Safe while the server runs.
    Export {
        bucket: String,
        /// Output file, or `-` for standard output (the default).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Also include the earlier commits the bucket keeps, and what
        /// they reach.
        #[arg(long)]
        history: bool,
    },
    /// Rebuild a bucket from an exported CAR file under the same head
    /// commit, after checking every block and invariant. Stop the server
    /// first.
    Import {
        file: PathBuf,
        /// Bucket name (default: the one the head commit records).
        #[arg(long)]
        bucket: Option<String>,
        /// Owner of the new bucket.
        #[arg(long, default_value = "billet")]
        owner: String,
    },
    /// Check a bucket (by name) or an exported CAR file (by path) without
    /// changing anything, and print a summary.
    Verify { target: String },
    /// Show where the node's segments are (open, sealed, shipped,
    /// evicted), the shipping backlog, the warm cache and each bucket's
    /// shipped head. Safe while the server runs.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Collect garbage: copy the live blocks out of sparse segments and
    /// remove them (locally, and on the remote through the delete queue).
    /// Asks the running server through its admin socket, or runs here
    /// when no server holds the log. BUCKET limits the per-bucket lines.
    Gc {
        bucket: Option<String>,
        /// Mark and report only; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show or set how much history a bucket keeps readable: commits
    /// younger than --keep-secs or among the newest --keep-commits (0
    /// turns a criterion off); the rest keep only their commit blocks.
    Retention {
        bucket: String,
        #[arg(long)]
        keep_secs: Option<u64>,
        #[arg(long)]
        keep_commits: Option<u64>,
        /// Go back to the node's default.
        #[arg(long, conflicts_with_all = ["keep_secs", "keep_commits"])]
        default: bool,
    },
    /// Rebuild a node whose data directory is lost from its remote copy,
    /// into an empty data directory: every bucket as of its shipped head,
    /// each block checked. Use the lost node's configuration (same
    /// `[remote]`, same `node`).
    Recover,
    /// Build a proof from this node's data, signed with its identity
    /// (DAG-CBOR; --json for a rendering to read).
    Prove {
        #[command(subcommand)]
        what: prove::ProveCommand,
        /// Output file (default: standard output).
        #[arg(short, long, global = true)]
        output: Option<PathBuf>,
        /// Print the JSON rendering instead of DAG-CBOR.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Check a proof file offline against a node's key: no data directory,
    /// no network.
    VerifyProof {
        file: PathBuf,
        /// The node's did:key (`billet serve` prints it).
        #[arg(long)]
        node: String,
    },
    /// Inspect Merkle Search Trees (atproto format) by hand.
    #[command(subcommand)]
    Mst(MstCommand),
    /// Inspect CAR files.
    #[command(subcommand)]
    Car(CarCommand),
}

#[derive(Subcommand)]
enum MstCommand {
    /// Print the MST root CID of key/CID pairs given as JSON lines
    /// (`{"key": "...", "cid": "..."}`), from FILE or standard input.
    Root {
        /// JSON-lines file; standard input when absent.
        file: Option<PathBuf>,
    },
    /// Walk an MST stored in a CAR file, check every node, and print its
    /// keys and values in order.
    Keys {
        file: PathBuf,
        /// The MST root. Default: the `data` field of the CAR's root block if
        /// it has one (a bucket commit), else the CAR's root itself.
        #[arg(long)]
        root: Option<String>,
        /// One `{"key": ..., "cid": ...}` object per line (S3 keys may hold
        /// tabs and newlines, which the plain `KEY<TAB>CID` form cannot).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create an access key pair and print it.
    Create {
        /// Owner of the buckets this key creates.
        #[arg(long, default_value = "billet")]
        owner: String,
        /// Use this access key id instead of a generated one.
        #[arg(long)]
        id: Option<String>,
        /// Use this secret instead of a generated one.
        #[arg(long)]
        secret: Option<String>,
        /// The key acts only through its grants (`billet keys allow`): not
        /// as its owner, and it creates no bucket.
        #[arg(long)]
        limited: bool,
        /// A limited key that reads every bucket of its owner (a `*` read
        /// grant) and writes nothing.
        #[arg(long, conflicts_with = "limited")]
        read_only: bool,
    },
    /// Grant a key permissions on a bucket (`*`: every bucket of the key's
    /// owner), added to those it has.
    Allow {
        key: String,
        bucket: String,
        #[command(flatten)]
        perms: keys::PermFlags,
    },
    /// Take permissions on a bucket from a key (all of them when none is
    /// named).
    Deny {
        key: String,
        bucket: String,
        #[command(flatten)]
        perms: keys::PermFlags,
    },
    /// List access keys and their grants.
    List,
    /// Delete an access key.
    Delete { id: String },
}

#[derive(Subcommand)]
enum CarCommand {
    /// List the blocks of a CAR file (CID, codec, size), verifying each.
    Ls { file: PathBuf },
}

/// Threads for blocking work (SQLite calls, log writes and fsyncs, MST
/// batches). Every task on them is short; uploads' MD5 runs on threads of
/// its own. Left unbounded, 64 busy connections grow the pool to ~100
/// threads whose stacks and malloc arenas cost more memory than they win
/// on a few cores.
const BLOCKING_THREADS: usize = 16;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build()?)
}

/// Libraries whose own log lines stay off unless the filter names them:
/// s3s logs whole requests and error sources (bodies included) at ERROR,
/// and hyper one WARN line per timed-out connection, which would let any
/// client write the log; billet logs each request once itself.
const QUIET_TARGETS: [&str; 4] = ["s3s", "hyper", "hyper_util", "h2"];

fn log_filter(filter: &str) -> String {
    let mut f = filter.to_string();
    for target in QUIET_TARGETS {
        if !filter.contains(target) {
            f.push_str(&format!(",{target}=off"));
        }
    }
    f
}

fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(log_filter(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(log_filter("info")));
    // Logs go to stderr (stdout carries what the user asked for, such as
    // a new key), coloured only on a terminal.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn keys_command(overrides: &config::Overrides, cmd: KeysCommand) -> anyhow::Result<()> {
    let config = config::Config::load(overrides)?;
    runtime()?.block_on(async {
        let index = keys::open_index(&config).await?;
        match cmd {
            KeysCommand::Create {
                owner,
                id,
                secret,
                limited,
                read_only,
            } => {
                let k =
                    keys::create(index.as_ref(), &owner, id, secret, limited || read_only).await?;
                if read_only {
                    keys::allow(index.as_ref(), &k.id, "*", keys::PermFlags::READ).await?;
                }
                println!("AWS_ACCESS_KEY_ID={}", k.id);
                println!("AWS_SECRET_ACCESS_KEY={}", k.secret);
                Ok(())
            }
            KeysCommand::Allow { key, bucket, perms } => {
                keys::allow(index.as_ref(), &key, &bucket, perms).await
            }
            KeysCommand::Deny { key, bucket, perms } => {
                keys::deny(index.as_ref(), &key, &bucket, perms).await
            }
            KeysCommand::List => keys::list(index.as_ref()).await,
            KeysCommand::Delete { id } => keys::delete(index.as_ref(), &id).await,
        }
    })
}

fn fsck(overrides: &config::Overrides, bucket: &str, repair: bool) -> anyhow::Result<()> {
    let config = config::Config::load(overrides)?;
    runtime()?.block_on(async {
        let index = keys::open_index(&config).await?;
        let engine = offline::reader(&config, index).await?;
        let r = engine.fsck(bucket, repair).await?;
        for p in &r.problems {
            println!("problem: {p}");
        }
        let head = r.head.map(|c| c.to_string()).unwrap_or_default();
        println!(
            "bucket {} head {} (seq {}): {} keys, {} versions, {} body bytes verified, {} problems{}",
            r.bucket,
            head,
            r.seq,
            r.keys,
            r.versions,
            r.body_bytes,
            r.problems.len(),
            if r.repaired { "; index rows rebuilt from the MST" } else { "" }
        );
        if !r.problems.is_empty() && !r.repaired {
            anyhow::bail!("{} problems found in bucket {}", r.problems.len(), r.bucket);
        }
        Ok(())
    })
}

fn serve(overrides: &config::Overrides) -> anyhow::Result<()> {
    let config = config::Config::load(overrides)?;
    init_tracing(&config.log_level);
    runtime()?.block_on(serve::run(config))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve => {
            malloc::tune();
            serve(&cli.overrides)
        }
        Command::Keys(cmd) => keys_command(&cli.overrides, cmd),
        Command::Fsck { bucket, repair } => fsck(&cli.overrides, &bucket, repair),
        Command::Export {
            bucket,
            output,
            history,
        } => config::Config::load(&cli.overrides)
            .and_then(|c| export::export(&c, &bucket, output.as_deref(), history)),
        Command::Import {
            file,
            bucket,
            owner,
        } => config::Config::load(&cli.overrides)
            .and_then(|c| import::import(&c, &file, bucket.as_deref(), &owner)),
        Command::Verify { target } => {
            config::Config::load(&cli.overrides).and_then(|c| verify::verify(&c, &target))
        }
        Command::Status { json } => {
            config::Config::load(&cli.overrides).and_then(|c| status::status(&c, json))
        }
        Command::Gc {
            bucket,
            dry_run,
            json,
        } => config::Config::load(&cli.overrides)
            .and_then(|c| gc::gc(&c, dry_run, bucket.as_deref(), json)),
        Command::Retention {
            bucket,
            keep_secs,
            keep_commits,
            default,
        } => config::Config::load(&cli.overrides)
            .and_then(|c| gc::retention(&c, &bucket, keep_secs, keep_commits, default)),
        Command::Recover => {
            let c = config::Config::load(&cli.overrides);
            if let Ok(c) = &c {
                init_tracing(&c.log_level);
            }
            c.and_then(|c| recover::recover(&c))
        }
        Command::Prove { what, output, json } => {
            config::Config::load(&cli.overrides).and_then(|c| prove::prove(&c, what, output, json))
        }
        Command::VerifyProof { file, node } => prove::verify_proof(&file, &node),
        Command::Mst(MstCommand::Root { file }) => inspect::mst_root(file.as_deref()),
        Command::Mst(MstCommand::Keys { file, root, json }) => {
            inspect::mst_keys(&file, root.as_deref(), json)
        }
        Command::Car(CarCommand::Ls { file }) => inspect::car_ls(&file),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("billet: {e:#}");
            ExitCode::FAILURE
        }
    }
}
