//! The `billet` command line.

mod inspect;

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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
enum CarCommand {
    /// List the blocks of a CAR file (CID, codec, size), verifying each.
    Ls { file: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
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
