use std::time::Duration;

/// When a plane seals its open segment.
#[derive(Debug, Clone)]
pub struct PlaneConfig {
    /// Seal once the segment holds at least this many bytes.
    pub seal_bytes: u64,
    /// Seal a non-empty segment this long after its first block.
    pub seal_after: Duration,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub data: PlaneConfig,
    pub catalog: PlaneConfig,
    /// Hash every block of every sealed segment when opening (detects bit
    /// rot at start-up at the cost of reading the whole log once).
    pub verify_sealed_on_open: bool,
    /// Open even if a sealed segment is damaged: drop what cannot be read,
    /// say so, and go on. Without it a damaged sealed segment stops start-up.
    pub repair: bool,
    /// Open segment files kept as file handles at most.
    pub max_open_files: usize,
    /// Open without changing anything on disk (no tail cut, no sidecar
    /// written, no segment created) and refuse writes: for tools reading a
    /// log that a running server owns.
    pub read_only: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            data: PlaneConfig {
                seal_bytes: 64 << 20,
                seal_after: Duration::from_secs(5),
            },
            catalog: PlaneConfig {
                seal_bytes: 16 << 20,
                seal_after: Duration::from_secs(5),
            },
            verify_sealed_on_open: true,
            repair: false,
            max_open_files: 256,
            read_only: false,
        }
    }
}
