//! The node's loop: take every request already waiting, apply them in
//! order, commit their appends with one write and one sync, then send all
//! their replies in request order with one flush.

use crate::input::{Input, Lines};
use crate::log::{self, CompactError, Log, LogError, OpenError};
use crate::protocol::attribution::Found;
use crate::protocol::{self, ErrorCode, Kind, Rejection, Reply, Request};
use crate::state::State;
use anyhow::{Result, bail};
use std::borrow::Cow;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::rc::Rc;

/// Input bytes one batch may take, whatever `--max-batch` says.
const MAX_BATCH_BYTES: usize = 4 << 20;

#[derive(Debug, Clone)]
pub struct Config {
    /// Where logs live; `None` for a private, unlinked log.
    pub dir: Option<PathBuf>,
    pub log: log::Options,
    /// Most requests served per sync.
    pub max_batch: usize,
}

impl Config {
    /// Longest input line kept: a maximal payload written entirely as
    /// `\u00XX` escapes, plus room for the envelope.
    pub fn max_line_bytes(&self) -> usize {
        6 * self.log.max_entry_bytes as usize + (64 << 10)
    }
}

/// One input line, in the order it came; its strings borrow from the
/// line where they can.
struct Job<'a> {
    /// 1-based, counting every line read from stdin.
    line: u64,
    /// What stderr says about a bad line, said when its turn comes so that
    /// stderr follows input order.
    complaint: Option<String>,
    /// `None` when the line names nobody to answer: it is only logged.
    message: Option<Message<'a>>,
}

impl Job<'_> {
    fn msg_id(&self) -> Option<u64> {
        self.message.as_ref().and_then(|m| m.msg_id)
    }
}

/// A request (or a line answered with an error) and where its reply goes.
struct Message<'a> {
    peer: Cow<'a, str>,
    addressed_to: Cow<'a, str>,
    msg_id: Option<u64>,
    kind: Result<Kind, Rejection>,
    request: Result<Request<'a>, Rejection>,
}

/// One per job, in job order: `None` where there is nothing to send.
type Replies<'j> = Vec<Option<Outgoing<'j>>>;

struct Outgoing<'j> {
    to: &'j Message<'j>,
    /// This node's id as it was when the request was applied (a request
    /// before `init` is answered from the address it was sent to).
    src: Rc<str>,
    reply: Reply,
}

pub struct Node {
    config: Config,
    node_id: Option<Rc<str>>,
    log: Option<Log>,
    /// The state of every entry appended so far; `None` until a request
    /// needs it (then built from the newest snapshot and the log after it,
    /// so opening a long log stays fast), and again after a rollback.
    state: Option<State>,
    next_msg_id: u64,
    /// The last input line whose complaint went to stderr: a batch retried
    /// after a failed write does not repeat them.
    reported_through: u64,
}

/// A line that does not parse: answered with error 12 if the scan found
/// who sent it, else only logged. `kept` is the line, unless it was too
/// long to keep.
fn bad_line<'a>(line: u64, why: String, found: &Found, kept: Option<&[u8]>) -> Job<'a> {
    let sender = found.sender();
    let answer = match &sender {
        Some((peer, msg_id)) => format!("answered error 12 to {peer:?} (msg_id {msg_id})"),
        None => "nobody to answer (no `src` and `body.msg_id` found)".to_owned(),
    };
    let complaint = match kept {
        Some(bytes) => {
            let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]);
            format!("input line {line}: ignored ({why}), {answer}: {shown:?}")
        }
        None => format!("input line {line}: discarded unread ({why}), {answer}"),
    };
    let message = sender.map(|(peer, msg_id)| {
        let text = match kept {
            Some(_) => why,
            None => format!("{why}; it was discarded unread"),
        };
        let rejection = Rejection::new(ErrorCode::MalformedRequest, text);
        Message {
            peer: peer.into(),
            addressed_to: found.dest().unwrap_or_default().into(),
            msg_id: Some(msg_id),
            kind: Err(rejection.clone()),
            request: Err(rejection),
        }
    });
    Job {
        line,
        complaint: Some(complaint),
        message,
    }
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

impl Node {
    pub fn new(config: Config) -> Node {
        Node {
            config,
            node_id: None,
            log: None,
            state: None,
            next_msg_id: 0,
            reported_through: 0,
        }
    }

    /// Serves `input` until it ends. `Err` only when the node must stop: a
    /// failed sync (the replies saying so are sent first) or a dead stdout.
    pub fn run(mut self, input: impl Read, out: &mut impl Write) -> Result<()> {
        let mut lines = Lines::new(input, self.config.max_line_bytes());
        let mut line = 0;
        while let Some(batch) = lines.next_batch(self.config.max_batch, MAX_BATCH_BYTES) {
            let jobs: Vec<Job> = batch
                .iter()
                .map(|input| {
                    line += 1;
                    self.parse(input, line)
                })
                .collect();
            self.serve(&jobs, out)?;
        }
        Ok(())
    }

    fn parse<'a>(&self, input: Input<'a>, line: u64) -> Job<'a> {
        let bytes = match input {
            Input::Line(bytes) => bytes,
            Input::Oversized { bytes, found } => {
                let why = format!(
                    "the line is {bytes} bytes, over the limit of {} bytes (6 x --max-entry-bytes + 64 KiB)",
                    self.config.max_line_bytes()
                );
                return bad_line(line, why, found, None);
            }
        };
        match protocol::parse_envelope(bytes) {
            Ok(mut env) => {
                let msg_id = protocol::msg_id(&env.body);
                let kind = protocol::kind(&env.body);
                let request = match kind {
                    Ok(k) => {
                        protocol::validate(k, &mut env.body, self.config.log.max_entry_bytes, bytes)
                    }
                    Err(ref e) => Err(e.clone()),
                };
                Job {
                    line,
                    complaint: None,
                    message: Some(Message {
                        msg_id,
                        peer: env.src,
                        addressed_to: env.dest,
                        kind,
                        request,
                    }),
                }
            }
            Err(why) => {
                let found = protocol::attribution::scan(bytes);
                bad_line(line, why, &found, Some(bytes))
            }
        }
    }

    /// Applies `jobs`, commits, and sends their replies.
    fn serve(&mut self, jobs: &[Job], out: &mut impl Write) -> Result<()> {
        let (replies, fatal) = match self.apply_batched(jobs) {
            Ok(replies) => (replies, None),
            Err((LogError::Write(e), mut replies)) => {
                crate::stderr!(
                    "writing a batch of appends failed ({e}); rolled back, retrying one at a time"
                );
                let (retried, failure) = self.apply_one_by_one(&jobs[replies.len()..]);
                replies.extend(retried);
                (replies, failure)
            }
            Err((LogError::Sync(e) | LogError::Read(e), _)) => (Vec::new(), Some(e)),
        };
        let Some(e) = fatal else {
            self.send(replies, out)?;
            let extended = self.log.as_mut().map_or(Ok(()), Log::extend_ahead);
            self.print_events();
            if let Err(LogError::Sync(e) | LogError::Write(e) | LogError::Read(e)) = extended {
                // Nothing waits on this sync, but the disk just failed one.
                crate::stderr!("fsync while extending the log failed ({e}): exiting");
                bail!("fsync failed: {e}");
            }
            return Ok(());
        };
        crate::stderr!(
            "fsync of the log failed ({e}). The kernel may have dropped the unsynced bytes, \
             so no later sync could prove them durable: exiting. A restart replays what is really on disk."
        );
        let served = replies.len();
        let mut replies = replies;
        for job in &jobs[served..] {
            self.report(job);
            let reply = Reply::error(
                job.msg_id(),
                Rejection::new(
                    ErrorCode::Crash,
                    format!(
                        "fsync failed ({e}); this request may or may not have taken effect; the node is exiting"
                    ),
                ),
            );
            replies.push(self.outgoing(job, Some(reply)));
        }
        self.send(replies, out)?;
        bail!("fsync failed: {e}")
    }

    /// The fast path: everything applied, then one commit. After a failed
    /// write, every append not yet durable is undone, and the error comes
    /// with the replies of the jobs before the first undone append (or
    /// before the job that failed): the rest must be redone one at a time.
    fn apply_batched<'j>(
        &mut self,
        jobs: &'j [Job],
    ) -> Result<Replies<'j>, (LogError, Replies<'j>)> {
        let mut replies = Vec::with_capacity(jobs.len());
        let mut failed_at = jobs.len();
        let mut result = Ok(());
        for (i, job) in jobs.iter().enumerate() {
            match self.apply(job) {
                Ok(reply) => replies.push(self.outgoing(job, reply)),
                Err(e) => {
                    failed_at = i;
                    result = Err(e);
                    break;
                }
            }
        }
        if result.is_ok() {
            result = self.log.as_mut().map_or(Ok(()), Log::commit);
        }
        match result {
            Ok(()) => Ok(replies),
            Err(LogError::Write(e)) => {
                self.state = None;
                let undone_from = match self.log.as_mut().map(Log::rollback) {
                    Some(Err(rollback)) => return Err((rollback, Vec::new())),
                    Some(Ok(offset)) => offset,
                    None => u64::MAX,
                };
                // Appends before a roll inside this batch are durable and
                // stand; the first undone one and all after it are redone.
                let redo_from = replies
                    .iter()
                    .position(|r| {
                        matches!(r, Some(Outgoing { reply: Reply::WalAppendOk { offset, .. }, .. })
                            if *offset >= undone_from)
                    })
                    .unwrap_or(failed_at);
                replies.truncate(redo_from);
                Err((LogError::Write(e), replies))
            }
            Err(e) => Err((e, Vec::new())),
        }
    }

    /// The careful path after a failed write: one commit per append, so
    /// exactly the appends that do not fit get a definite error. Returns the
    /// replies so far and, if a sync failed, why (the rest are then unserved).
    fn apply_one_by_one<'j>(&mut self, jobs: &'j [Job]) -> (Replies<'j>, Option<std::io::Error>) {
        let mut replies = Vec::with_capacity(jobs.len());
        for job in jobs {
            let outcome = self.apply(job).and_then(|reply| {
                self.log.as_mut().map_or(Ok(()), Log::commit)?;
                Ok(reply)
            });
            let reply = match outcome {
                Ok(reply) => reply,
                Err(LogError::Write(e)) => {
                    self.state = None;
                    if let Some(Err(failed)) = self.log.as_mut().map(Log::rollback) {
                        return (replies, Some(failed.into_io()));
                    }
                    Some(Reply::error(
                        job.msg_id(),
                        Rejection::new(
                            ErrorCode::Abort,
                            format!(
                                "the append was not written ({e}); nothing was added to the log"
                            ),
                        ),
                    ))
                }
                Err(LogError::Sync(e) | LogError::Read(e)) => return (replies, Some(e)),
            };
            replies.push(self.outgoing(job, reply));
        }
        (replies, None)
    }

    /// Takes one input line in its turn: says on stderr what was wrong with
    /// it, if anything, and applies its request. `None`: nothing to answer.
    fn apply(&mut self, job: &Job) -> Result<Option<Reply>, LogError> {
        self.report(job);
        match &job.message {
            Some(message) => self.apply_message(message).map(Some),
            None => Ok(None),
        }
    }

    /// Says on stderr what was wrong with a bad input line, once.
    fn report(&mut self, job: &Job) {
        if let Some(complaint) = &job.complaint
            && job.line > self.reported_through
        {
            crate::stderr!("{complaint}");
            self.reported_through = job.line;
        }
    }

    /// Applies one request to the log (appends stay pending until commit).
    fn apply_message(&mut self, msg: &Message) -> Result<Reply, LogError> {
        let error = |r: Rejection| Ok(Reply::error(msg.msg_id, r));
        let kind = match &msg.kind {
            Ok(k) => *k,
            Err(r) => return error(r.clone()),
        };
        if kind != Kind::Init && self.log.is_none() {
            return error(Rejection::new(
                ErrorCode::TemporarilyUnavailable,
                "the node is not initialized yet: send init first",
            ));
        }
        let request = match &msg.request {
            Ok(r) => r,
            Err(r) => return error(r.clone()),
        };
        let in_reply_to = msg.msg_id.expect("validated requests have a msg_id");
        match request {
            Request::Init { node_id } => Ok(match self.init(node_id) {
                Ok(()) => Reply::InitOk { in_reply_to },
                Err(r) => Reply::error(msg.msg_id, r),
            }),
            Request::Append { payload } => {
                let log = self.log.as_mut().expect("initialized");
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
                let log = self.log.as_mut().expect("initialized");
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
                        msg.msg_id,
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
                        msg.msg_id,
                        Rejection::new(
                            ErrorCode::KeyDoesNotExist,
                            format!("no entry at offset {offset}: {}", held(log)),
                        ),
                    ),
                })
            }
            Request::Info => {
                let log = self.log.as_ref().expect("initialized");
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
                            msg.msg_id,
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
                self.log.as_mut().expect("initialized").commit()?;
                if let Err(e) = self.state() {
                    return error(state_unavailable(e)?);
                }
                let (log, state) = (
                    self.log.as_mut().expect("initialized"),
                    self.state.as_ref().expect("just built"),
                );
                Ok(match log.write_snapshot(state) {
                    Ok((snapshot_offset, snapshot_size_bytes)) => Reply::WalSnapshotOk {
                        in_reply_to,
                        snapshot_offset,
                        snapshot_size_bytes,
                    },
                    Err(LogError::Sync(e)) => return Err(LogError::Sync(e)),
                    Err(e) => Reply::error(
                        msg.msg_id,
                        Rejection::new(
                            ErrorCode::Abort,
                            format!("the snapshot was not taken ({e}); the log is unchanged"),
                        ),
                    ),
                })
            }
            Request::Compact { before } => {
                let log = self.log.as_mut().expect("initialized");
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
                let log = self.log.as_mut().expect("initialized");
                Ok(match log.set_max_segment_bytes(*max_segment_bytes) {
                    Ok(()) => Reply::WalSegmentConfigOk {
                        in_reply_to,
                        max_segment_bytes: *max_segment_bytes,
                    },
                    Err(e) => Reply::error(
                        msg.msg_id,
                        Rejection::new(
                            ErrorCode::Abort,
                            format!("the setting was not changed: {e}"),
                        ),
                    ),
                })
            }
            Request::SegmentInfo => {
                let log = self.log.as_ref().expect("initialized");
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
        let dir = self.config.dir.clone().unwrap_or_else(std::env::temp_dir);
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
                    let _ = writeln!(std::io::stderr(), "wal-node: {text}");
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
            let log = self.log.as_mut().expect("initialized");
            let (mut state, from) = log.base_state()?;
            log.scan_entries(from, |_, payload, checksum_valid| {
                if checksum_valid {
                    state.apply(payload);
                }
            })?;
            self.state = Some(state);
        }
        Ok(self.state.as_ref().expect("built"))
    }

    /// Where `reply` to `job` goes, if anywhere.
    fn outgoing<'j>(&self, job: &'j Job, reply: Option<Reply>) -> Option<Outgoing<'j>> {
        let to = job.message.as_ref()?;
        Some(Outgoing {
            to,
            src: self.src_for(to),
            reply: reply?,
        })
    }

    fn src_for(&self, message: &Message) -> Rc<str> {
        self.node_id
            .clone()
            .unwrap_or_else(|| message.addressed_to.as_ref().into())
    }

    fn init(&mut self, node_id: &str) -> Result<(), Rejection> {
        if let Some(current) = &self.node_id {
            return if &**current == node_id {
                Ok(())
            } else {
                Err(Rejection::new(
                    ErrorCode::PreconditionFailed,
                    format!(
                        "this node is already initialized as {current:?}; init names {node_id:?}"
                    ),
                ))
            };
        }
        let log = match &self.config.dir {
            None => Log::private(self.config.log)
                .map_err(|e| Rejection::new(ErrorCode::Crash, format!("{e:#}")))?,
            Some(dir) => match log::adopt::open_node(dir, node_id, self.config.log) {
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
        self.log = Some(log);
        self.print_events();
        let log = self.log.as_ref().expect("just opened");
        crate::stderr!(
            "node {node_id} serving log {} ({}, {} bytes, {})",
            log.dir()
                .map_or("<private, unlinked>".into(), |p| p.display().to_string()),
            crate::count(log.entries(), "entry", "entries"),
            log.total_bytes(),
            crate::count(log.segments().len() as u64, "segment", "segments"),
        );
        self.node_id = Some(node_id.into());
        Ok(())
    }

    /// Says on stderr what the log reported: a cut tail, bit rot, a rebuilt
    /// index.
    fn print_events(&mut self) {
        if let Some(log) = self.log.as_mut() {
            for event in log.take_events() {
                crate::stderr!("{event}");
            }
        }
    }

    /// Writes `replies` in order with one flush, numbering them.
    fn send(&mut self, replies: Replies, out: &mut impl Write) -> Result<()> {
        let mut buf = Vec::new();
        for Outgoing { to, src, mut reply } in replies.into_iter().flatten() {
            if let (Reply::WalInfoOk { fsynced, .. }, Some(log)) = (&mut reply, &self.log) {
                *fsynced = log.all_durable();
            }
            protocol::write_reply(&mut buf, &src, &to.peer, &reply, self.next_msg_id);
            self.next_msg_id += 1;
        }
        if !buf.is_empty() {
            out.write_all(&buf)?;
            out.flush()?;
        }
        Ok(())
    }
}
