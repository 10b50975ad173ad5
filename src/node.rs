//! The node's loop: take every request already waiting, apply them in
//! order, commit their appends with one write and one sync, then send all
//! their replies in request order with one flush.

use crate::input::{Input, Lines};
use crate::protocol::{self, ErrorCode, Kind, Rejection, Reply, Request};
use crate::wal::{self, LogError, OpenError, Wal};
use anyhow::{Result, bail};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::rc::Rc;

/// Input bytes one batch may take, whatever `--max-batch` says.
const MAX_BATCH_BYTES: usize = 4 << 20;

#[derive(Debug, Clone)]
pub struct Config {
    /// Where logs live; `None` for a private, unlinked log.
    pub dir: Option<PathBuf>,
    pub wal: wal::Options,
    /// Most requests served per sync.
    pub max_batch: usize,
}

impl Config {
    /// Longest input line kept: a maximal payload written entirely as
    /// `\u00XX` escapes, plus room for the envelope.
    pub fn max_line_bytes(&self) -> usize {
        6 * self.wal.max_entry_bytes as usize + (64 << 10)
    }
}

/// One parsed request and where its reply goes.
struct Job {
    peer: String,
    addressed_to: String,
    msg_id: Option<u64>,
    kind: Result<Kind, Rejection>,
    request: Result<Request, Rejection>,
}

struct Outgoing<'j> {
    job: &'j Job,
    /// This node's id as it was when the request was applied (a request
    /// before `init` is answered from the address it was sent to).
    src: Rc<str>,
    reply: Reply,
}

pub struct Node {
    config: Config,
    node_id: Option<Rc<str>>,
    wal: Option<Wal>,
    next_msg_id: u64,
}

impl Node {
    pub fn new(config: Config) -> Node {
        Node {
            config,
            node_id: None,
            wal: None,
            next_msg_id: 0,
        }
    }

    /// Serves `input` until it ends. `Err` only when the node must stop: a
    /// failed sync (the replies saying so are sent first) or a dead stdout.
    pub fn run(mut self, input: impl Read, out: &mut impl Write) -> Result<()> {
        let mut lines = Lines::new(input, self.config.max_line_bytes());
        while let Some(batch) = lines.next_batch(self.config.max_batch, MAX_BATCH_BYTES) {
            let jobs: Vec<Job> = batch.into_iter().filter_map(|i| self.parse(i)).collect();
            self.serve(&jobs, out)?;
        }
        Ok(())
    }

    fn parse(&self, input: Input) -> Option<Job> {
        let line = match input {
            Input::Line(line) => line,
            Input::Oversized { bytes } => {
                eprintln!(
                    "wal-node: discarded an input line of {bytes} bytes, over the limit of {} bytes",
                    self.config.max_line_bytes()
                );
                return None;
            }
        };
        match protocol::parse_envelope(&line) {
            Ok(env) => {
                let kind = protocol::kind(&env.body);
                let request = match kind {
                    Ok(k) => protocol::validate(k, &env.body, self.config.wal.max_entry_bytes),
                    Err(ref e) => Err(e.clone()),
                };
                Some(Job {
                    msg_id: protocol::msg_id(&env.body),
                    peer: env.src,
                    addressed_to: env.dest,
                    kind,
                    request,
                })
            }
            Err(why) => {
                let shown = String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned();
                eprintln!("wal-node: ignored an input line ({why}): {shown:?}");
                None
            }
        }
    }

    /// Applies `jobs`, commits, and sends their replies.
    fn serve(&mut self, jobs: &[Job], out: &mut impl Write) -> Result<()> {
        let (replies, fatal) = match self.apply_batched(jobs) {
            Ok(replies) => (replies, None),
            Err((LogError::Write(e), mut replies)) => {
                eprintln!(
                    "wal-node: writing a batch of appends failed ({e}); rolled back, retrying one at a time"
                );
                let (retried, failure) = self.apply_one_by_one(&jobs[replies.len()..]);
                replies.extend(retried);
                (replies, failure)
            }
            Err((LogError::Sync(e) | LogError::Read(e), _)) => (Vec::new(), Some(e)),
        };
        let Some(e) = fatal else {
            self.send(replies, out)?;
            let extended = self.wal.as_mut().map_or(Ok(()), Wal::extend_ahead);
            if let Err(LogError::Sync(e) | LogError::Write(e) | LogError::Read(e)) = extended {
                // Nothing waits on this sync, but the disk just failed one.
                eprintln!("wal-node: fsync while extending the log failed ({e}): exiting");
                bail!("fsync failed: {e}");
            }
            return Ok(());
        };
        eprintln!(
            "wal-node: fsync of the log failed ({e}). The kernel may have dropped the unsynced bytes, \
             so no later sync could prove them durable: exiting. A restart replays what is really on disk."
        );
        let served = replies.len();
        let mut replies = replies;
        replies.extend(jobs[served..].iter().map(|job| Outgoing {
            job,
            src: self.src_for(job),
            reply: Reply::error(
                job.msg_id,
                Rejection::new(
                    ErrorCode::Crash,
                    format!("fsync failed ({e}); this request may or may not have taken effect; the node is exiting"),
                ),
            ),
        }));
        self.send(replies, out)?;
        bail!("fsync failed: {e}")
    }

    /// The fast path: everything applied, then one commit. After a failed
    /// write the log is rolled back to where the batch found it, and the
    /// error comes with the replies of the jobs before the log was opened
    /// (none if it was open already): the rest must be redone.
    fn apply_batched<'j>(
        &mut self,
        jobs: &'j [Job],
    ) -> Result<Vec<Outgoing<'j>>, (LogError, Vec<Outgoing<'j>>)> {
        let mut mark = self.wal.as_ref().map(Wal::mark);
        let mut redo_from = 0;
        let mut replies = Vec::with_capacity(jobs.len());
        let result = (|| {
            for (i, job) in jobs.iter().enumerate() {
                let was_closed = self.wal.is_none();
                let reply = self.apply(job)?;
                replies.push(Outgoing {
                    job,
                    src: self.src_for(job),
                    reply,
                });
                if was_closed && self.wal.is_some() {
                    mark = self.wal.as_ref().map(Wal::mark);
                    redo_from = i + 1;
                }
            }
            self.wal.as_mut().map_or(Ok(()), Wal::commit)
        })();
        match result {
            Ok(()) => Ok(replies),
            Err(LogError::Write(e)) => {
                if let (Some(wal), Some(mark)) = (self.wal.as_mut(), mark)
                    && let Err(rollback) = wal.rollback(mark)
                {
                    return Err((rollback, Vec::new()));
                }
                replies.truncate(redo_from);
                Err((LogError::Write(e), replies))
            }
            Err(e) => Err((e, Vec::new())),
        }
    }

    /// The careful path after a failed write: one commit per append, so
    /// exactly the appends that do not fit get a definite error. Returns the
    /// replies so far and, if a sync failed, why (the rest are then unserved).
    fn apply_one_by_one<'j>(
        &mut self,
        jobs: &'j [Job],
    ) -> (Vec<Outgoing<'j>>, Option<std::io::Error>) {
        let mut replies = Vec::with_capacity(jobs.len());
        for job in jobs {
            let mark = self.wal.as_ref().map(Wal::mark);
            let outcome = self.apply(job).and_then(|reply| {
                self.wal.as_mut().map_or(Ok(()), Wal::commit)?;
                Ok(reply)
            });
            let reply = match outcome {
                Ok(reply) => reply,
                Err(LogError::Write(e)) => {
                    let rolled_back = match (self.wal.as_mut(), mark) {
                        (Some(wal), Some(mark)) => wal.rollback(mark),
                        _ => Ok(()),
                    };
                    if let Err(LogError::Sync(e) | LogError::Write(e) | LogError::Read(e)) =
                        rolled_back
                    {
                        return (replies, Some(e));
                    }
                    Reply::error(
                        job.msg_id,
                        Rejection::new(
                            ErrorCode::Abort,
                            format!(
                                "the append was not written ({e}); nothing was added to the log"
                            ),
                        ),
                    )
                }
                Err(LogError::Sync(e) | LogError::Read(e)) => return (replies, Some(e)),
            };
            replies.push(Outgoing {
                job,
                src: self.src_for(job),
                reply,
            });
        }
        (replies, None)
    }

    /// Applies one request to the log (appends stay pending until commit).
    fn apply(&mut self, job: &Job) -> Result<Reply, LogError> {
        let error = |r: Rejection| Ok(Reply::error(job.msg_id, r));
        let kind = match &job.kind {
            Ok(k) => *k,
            Err(r) => return error(r.clone()),
        };
        if kind != Kind::Init && self.wal.is_none() {
            return error(Rejection::new(
                ErrorCode::TemporarilyUnavailable,
                "the node is not initialized yet: send init first",
            ));
        }
        let request = match &job.request {
            Ok(r) => r,
            Err(r) => return error(r.clone()),
        };
        let in_reply_to = job.msg_id.expect("validated requests have a msg_id");
        match request {
            Request::Init { node_id } => Ok(match self.init(node_id) {
                Ok(()) => Reply::InitOk { in_reply_to },
                Err(r) => Reply::error(job.msg_id, r),
            }),
            Request::Append { payload } => {
                let wal = self.wal.as_mut().expect("initialized");
                let a = wal.append(payload.as_bytes());
                Ok(Reply::WalAppendOk {
                    in_reply_to,
                    offset: a.offset,
                    length: a.length,
                    checksum: crate::frame::checksum_hex(a.crc),
                })
            }
            Request::Read { offset } => {
                let wal = self.wal.as_mut().expect("initialized");
                let entry = match wal.read(*offset) {
                    Err(LogError::Read(e)) => {
                        // One unreadable entry does not stop the node serving the rest.
                        eprintln!("wal-node: reading entry {offset} failed: {e}");
                        let text = format!("could not read entry {offset} from the log: {e}");
                        return error(Rejection::new(ErrorCode::Crash, text));
                    }
                    other => other?,
                };
                Ok(match entry {
                    Some(entry) => Reply::WalReadOk {
                        in_reply_to,
                        length: entry.payload.len() as u64,
                        payload: String::from_utf8_lossy(&entry.payload).into_owned(),
                        checksum_valid: entry.checksum_valid,
                        checksum: crate::frame::checksum_hex(entry.stored_crc),
                    },
                    None => Reply::error(
                        job.msg_id,
                        Rejection::new(
                            ErrorCode::KeyDoesNotExist,
                            format!(
                                "no entry at offset {offset}: the log has {}",
                                crate::count(wal.entries(), "entry", "entries")
                            ),
                        ),
                    ),
                })
            }
            Request::Info => {
                let wal = self.wal.as_ref().expect("initialized");
                Ok(Reply::WalInfoOk {
                    in_reply_to,
                    entries: wal.entries(),
                    total_bytes: wal.total_bytes(),
                    // Settled in `send`, once the batch's sync has happened.
                    fsynced: false,
                    corrupt_entries: wal.corrupt_entries(),
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

    fn src_for(&self, job: &Job) -> Rc<str> {
        self.node_id
            .clone()
            .unwrap_or_else(|| job.addressed_to.as_str().into())
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
        let wal = match &self.config.dir {
            None => {
                Wal::anonymous().map_err(|e| Rejection::new(ErrorCode::Crash, format!("{e:#}")))?
            }
            Some(dir) => {
                let path = dir.join(format!("{node_id}.wal"));
                match Wal::open(&path, self.config.wal) {
                    Ok((wal, _cut)) => wal,
                    Err(e @ OpenError::Locked(_)) => {
                        return Err(Rejection::new(
                            ErrorCode::TemporarilyUnavailable,
                            e.to_string(),
                        ));
                    }
                    Err(e) => {
                        let text = format!("cannot open the log: {e}");
                        eprintln!("wal-node: init failed: {text}");
                        return Err(Rejection::new(ErrorCode::Crash, text));
                    }
                }
            }
        };
        eprintln!(
            "wal-node: node {node_id} serving log {} ({} entries, {} bytes)",
            wal.path()
                .map_or("<private, unlinked>".into(), |p| p.display().to_string()),
            wal.entries(),
            wal.total_bytes()
        );
        self.node_id = Some(node_id.into());
        self.wal = Some(wal);
        Ok(())
    }

    /// Writes `replies` in order with one flush, numbering them.
    fn send(&mut self, replies: Vec<Outgoing>, out: &mut impl Write) -> Result<()> {
        let mut buf = Vec::new();
        for Outgoing {
            job,
            src,
            mut reply,
        } in replies
        {
            if let (
                Reply::WalInfoOk {
                    fsynced,
                    total_bytes,
                    ..
                },
                Some(wal),
            ) = (&mut reply, &self.wal)
            {
                *fsynced = wal.synced_through(*total_bytes);
            }
            protocol::write_reply(&mut buf, &src, &job.peer, &reply, self.next_msg_id);
            self.next_msg_id += 1;
        }
        if !buf.is_empty() {
            out.write_all(&buf)?;
            out.flush()?;
        }
        Ok(())
    }
}
