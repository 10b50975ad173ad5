//! The node once it is initialized: its id, its log and the state the log
//! builds, and every request it serves but `init`.

use crate::log::{self, CompactError, Log, LogError, OpenError};
use crate::node::Config;
use crate::protocol::{self, ErrorCode, Rejection, Reply, Request};
use crate::state::State;
use std::rc::Rc;

pub struct Serving {
    pub node_id: Rc<str>,
    log: Log,
    /// The state of every entry appended so far; `None` until a request
    /// needs it (then built from the newest snapshot and the log after it,
    /// so opening a long log stays fast), and again after a rollback.
    state: Option<State>,
}

/// The offsets a log holds, in words.
fn held(log: &Log) -> String {
    match log.entries() {
        0 => format!(
            "the log holds no entries (the next append gets offset {})",
            log.next_offset()
        ),
        _ => format!(
            "the log holds offsets {} to {}",
            log.first_offset(),
            log.next_offset() - 1
        ),
    }
}

/// A request that needs the state when it cannot be built: a failed read
/// is answered (error 13) and the node serves on; anything else stops it.
fn state_unavailable(e: LogError) -> Result<Rejection, LogError> {
    match e {
        LogError::Read(e) => {
            crate::stderr!("building the state failed: {e}");
            Ok(Rejection::new(
                ErrorCode::Crash,
                format!("could not build the state from the log: {e}"),
            ))
        }
        other => Err(other),
    }
}

impl Serving {
    /// Opens (or creates, or adopts) the log of `node_id`.
    pub fn open(config: &Config, node_id: &str) -> Result<Serving, Rejection> {
        let log = match &config.dir {
            None => Log::private(config.log)
                .map_err(|e| Rejection::new(ErrorCode::Crash, format!("{e:#}")))?,
            Some(dir) => match log::adopt::open_node(dir, node_id, config.log) {
                Ok(log) => log,
                Err(e @ OpenError::Locked(_)) => {
                    return Err(Rejection::new(
                        ErrorCode::TemporarilyUnavailable,
                        e.to_string(),
                    ));
                }
                Err(e) => {
                    let text = format!("cannot open the log: {e}");
                    crate::stderr!("init failed: {text}");
                    return Err(Rejection::new(ErrorCode::Crash, text));
                }
            },
        };
        let mut serving = Serving {
            node_id: node_id.into(),
            log,
            state: None,
        };
        serving.print_events();
        let log = &serving.log;
        crate::stderr!(
            "node {node_id} serving log {} ({}, {} bytes, {})",
            log.dir()
                .map_or("<private, unlinked>".into(), |p| p.display().to_string()),
            crate::count(log.entries(), "entry", "entries"),
            log.total_bytes(),
            crate::count(log.segments().len() as u64, "segment", "segments"),
        );
        Ok(serving)
    }

    /// Says on stderr what the log reported: a cut tail, bit rot, a rebuilt
    /// index.
    pub fn print_events(&mut self) {
        for event in self.log.take_events() {
            crate::stderr!("{event}");
        }
    }

    /// Makes every append so far durable.
    pub fn commit(&mut self) -> Result<(), LogError> {
        self.log.commit()
    }

    /// Undoes every append not yet durable (and the state built on them).
    /// Returns the first offset undone.
    pub fn rollback(&mut self) -> Result<u64, LogError> {
        self.state = None;
        self.log.rollback()
    }

    /// Preallocates ahead of the data, between batches.
    pub fn extend_ahead(&mut self) -> Result<(), LogError> {
        let extended = self.log.extend_ahead();
        self.print_events();
        extended
    }

    pub fn all_durable(&self) -> bool {
        self.log.all_durable()
    }

    /// Serves one request (not `init`); appends stay pending until commit.
    /// `Err` only for a failure of the log that the batch must handle.
    pub fn handle(&mut self, request: &Request, in_reply_to: u64) -> Result<Reply, LogError> {
        let error = |r: Rejection| Ok(Reply::error(Some(in_reply_to), r));
        match request {
            Request::Init { .. } => unreachable!("init is the node's, not the log's"),
            Request::Append { payload } => {
                let log = &mut self.log;
                let a = log.append(payload.as_bytes())?;
                if let Some(state) = self.state.as_mut() {
                    state.apply(payload.as_bytes());
                }
                Ok(Reply::WalAppendOk {
                    in_reply_to,
                    offset: a.offset,
                    length: a.length,
                    checksum: a.crc,
                })
            }
            Request::Read { offset } => {
                let log = &mut self.log;
                let entry = match log.read(*offset) {
                    Err(LogError::Read(e)) => {
                        // One unreadable entry does not stop the node serving the rest.
                        crate::stderr!("reading entry {offset} failed: {e}");
                        let text = format!("could not read entry {offset} from the log: {e}");
                        return error(Rejection::new(ErrorCode::Crash, text));
                    }
                    other => other?,
                };
                Ok(match entry {
                    Some(entry) => Reply::WalReadOk {
                        in_reply_to,
                        length: entry.payload.len() as u64,
                        checksum_valid: entry.checksum_valid,
                        checksum: entry.stored_crc,
                        // Damaged bytes decode lossily; whole ones move as they are.
                        payload: String::from_utf8(entry.payload).unwrap_or_else(|bad| {
                            String::from_utf8_lossy(bad.as_bytes()).into_owned()
                        }),
                    },
                    None if *offset < log.first_offset() => Reply::error(
                        Some(in_reply_to),
                        Rejection::new(
                            ErrorCode::KeyDoesNotExist,
                            format!(
                                "entry {offset} was compacted away: the first offset in the log \
                                 is {}",
                                log.first_offset()
                            ),
                        ),
                    ),
                    None => Reply::error(
                        Some(in_reply_to),
                        Rejection::new(
                            ErrorCode::KeyDoesNotExist,
                            format!("no entry at offset {offset}: {}", held(log)),
                        ),
                    ),
                })
            }
            Request::Info => {
                let log = &self.log;
                Ok(Reply::WalInfoOk {
                    in_reply_to,
                    entries: log.entries(),
                    total_bytes: log.total_bytes(),
                    // Settled in `send`, once the batch's sync has happened.
                    fsynced: false,
                    corrupt_entries: log.corrupt_entries(),
                    first_offset: log.first_offset(),
                })
            }
            Request::State { key } => {
                let state = match self.state() {
                    Ok(state) => state,
                    Err(e) => return error(state_unavailable(e)?),
                };
                Ok(match key {
                    None => Reply::WalStateOk {
                        in_reply_to,
                        state: state.as_map().clone(),
                    },
                    Some(key) => match state.get(key) {
                        Some(value) => Reply::WalStateKeyOk {
                            in_reply_to,
                            key: key.clone(),
                            value: value.to_owned(),
                        },
                        None => Reply::error(
                            Some(in_reply_to),
                            Rejection::new(
                                ErrorCode::KeyDoesNotExist,
                                format!("no key {key:?} in the state"),
                            ),
                        ),
                    },
                })
            }
            Request::Recover { entries } => {
                let (state, entries_replayed, entries_skipped) = crate::state::recover(entries);
                Ok(Reply::WalRecoverOk {
                    in_reply_to,
                    entries_replayed,
                    entries_skipped,
                    state: state.as_map().clone(),
                })
            }
            Request::Snapshot => {
                // The appends before it become durable first, through the
                // batch's own failure handling if that write fails.
                self.log.commit()?;
                if let Err(e) = self.state() {
                    return error(state_unavailable(e)?);
                }
                let (log, state) = (&mut self.log, self.state.as_ref().expect("just built"));
                Ok(match log.write_snapshot(state) {
                    Ok((snapshot_offset, snapshot_size_bytes)) => Reply::WalSnapshotOk {
                        in_reply_to,
                        snapshot_offset,
                        snapshot_size_bytes,
                    },
                    Err(LogError::Sync(e)) => return Err(LogError::Sync(e)),
                    Err(e) => Reply::error(
                        Some(in_reply_to),
                        Rejection::new(
                            ErrorCode::Abort,
                            format!("the snapshot was not taken ({e}); the log is unchanged"),
                        ),
                    ),
                })
            }
            Request::Compact { before } => {
                let log = &mut self.log;
                let rejection = match log.compact(*before) {
                    Ok(c) => {
                        return Ok(Reply::WalCompactOk {
                            in_reply_to,
                            snapshot_offset: c.snapshot_offset,
                            entries_before: c.entries_before,
                            entries_after: c.entries_after,
                            bytes_freed: c.bytes_freed,
                        });
                    }
                    Err(CompactError::PastEnd { end }) => Rejection::new(
                        ErrorCode::MalformedRequest,
                        format!(
                            "snapshot_at_offset {before} is past the end of the log: the next \
                             entry would be offset {end}"
                        ),
                    ),
                    Err(CompactError::NotCovered { newest }) => Rejection::new(
                        ErrorCode::PreconditionFailed,
                        match newest {
                            None => format!(
                                "no snapshot exists: take one (wal_snapshot) before compacting \
                                 the entries before offset {before}"
                            ),
                            Some(s) => format!(
                                "the newest snapshot covers the entries before offset {s}, not \
                                 those before {before}: take a newer one (wal_snapshot) first"
                            ),
                        },
                    ),
                    Err(CompactError::Io(LogError::Sync(e))) => return Err(LogError::Sync(e)),
                    Err(CompactError::Io(e)) => Rejection::new(
                        ErrorCode::Crash,
                        format!("compaction failed ({e}); it may or may not have taken effect"),
                    ),
                };
                error(rejection)
            }
            Request::SegmentConfig { max_segment_bytes } => {
                let log = &mut self.log;
                Ok(match log.set_max_segment_bytes(*max_segment_bytes) {
                    Ok(()) => Reply::WalSegmentConfigOk {
                        in_reply_to,
                        max_segment_bytes: *max_segment_bytes,
                    },
                    Err(e @ LogError::Sync(_)) => Reply::error(
                        Some(in_reply_to),
                        Rejection::new(
                            ErrorCode::Crash,
                            format!(
                                "the setting was written but not made durable ({e}): a restart \
                                 may find the old or the new value; the old one is in force now"
                            ),
                        ),
                    ),
                    Err(e) => Reply::error(
                        Some(in_reply_to),
                        Rejection::new(
                            ErrorCode::Abort,
                            format!("the setting was not changed: {e}"),
                        ),
                    ),
                })
            }
            Request::SegmentInfo => {
                let log = &self.log;
                let segments: Vec<protocol::SegmentRow> =
                    log.segments().into_iter().map(Into::into).collect();
                let active_segment = segments.last().expect("an active segment").file.clone();
                Ok(Reply::WalSegmentInfoOk {
                    in_reply_to,
                    segments,
                    active_segment,
                })
            }
            Request::FsyncBenchmark {
                entries,
                strategies,
            } => Ok(self.fsync_benchmark(in_reply_to, *entries, strategies)),
        }
    }

    /// Measures each strategy on a scratch file beside the log (in the temp
    /// directory for a private log); the log is never touched. The node has
    /// one thread, so every other request waits until this returns.
    fn fsync_benchmark(
        &self,
        in_reply_to: u64,
        entries: u32,
        strategies: &[crate::fsbench::Strategy],
    ) -> Reply {
        use crate::fsbench;
        let dir = self
            .log
            .dir()
            .map_or_else(std::env::temp_dir, std::path::Path::to_path_buf);
        let mut results = Vec::with_capacity(strategies.len());
        for &strategy in strategies {
            match fsbench::measure(&dir, entries, fsbench::PAYLOAD_BYTES, strategy) {
                Ok(rate) => results.push(protocol::BenchResult::new(strategy, rate)),
                Err(e) => {
                    // Only a scratch file failed: the log's state is what it was.
                    let text = format!(
                        "fsync_benchmark: strategy {} failed on a scratch file in {} ({e}); \
                         the log was not touched",
                        strategy.name(),
                        dir.display()
                    );
                    crate::stderr!("{text}");
                    return Reply::error(Some(in_reply_to), Rejection::new(ErrorCode::Abort, text));
                }
            }
        }
        Reply::FsyncBenchmarkOk {
            in_reply_to,
            results,
        }
    }

    /// The state of every entry appended so far, built on first use from
    /// the newest snapshot and the entries after it (entries failing their
    /// checksum are not applied: their payload is not what was written).
    fn state(&mut self) -> Result<&State, LogError> {
        if self.state.is_none() {
            let (mut state, from) = self.log.base_state()?;
            self.log.scan_entries(from, |_, payload, checksum_valid| {
                if checksum_valid {
                    state.apply(payload);
                }
            })?;
            self.state = Some(state);
        }
        Ok(self.state.as_ref().expect("built"))
    }
}
