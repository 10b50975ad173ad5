//! The node's loop: take every request already waiting, apply them in
//! order, commit their appends with one write and one sync, then send all
//! their replies in request order with one flush.

use crate::input::{Input, Lines};
use crate::log::{self, LogError};
use crate::protocol::attribution::Found;
use crate::protocol::{self, ErrorCode, Kind, Rejection, Reply, Request};
use crate::serving::Serving;
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

/// Where the node is in its life: before `init` it has no log.
enum Phase {
    AwaitingInit,
    Serving(Box<Serving>),
}

/// A batch that stopped on a failure of the log: the error, and the replies
/// of the jobs before it that stand (the rest must be redone or failed).
struct Interrupted<'j> {
    error: LogError,
    replies: Replies<'j>,
}

pub struct Node {
    config: Config,
    phase: Phase,
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

impl Node {
    pub fn new(config: Config) -> Node {
        Node {
            config,
            phase: Phase::AwaitingInit,
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
            Err(Interrupted {
                error: LogError::Write(e),
                mut replies,
            }) => {
                crate::stderr!(
                    "writing a batch of appends failed ({e}); rolled back, retrying one at a time"
                );
                let (retried, failure) = self.apply_one_by_one(&jobs[replies.len()..]);
                replies.extend(retried);
                (replies, failure)
            }
            Err(Interrupted {
                error: LogError::Sync(e) | LogError::Read(e),
                ..
            }) => (Vec::new(), Some(e)),
        };
        let Some(e) = fatal else {
            self.send(replies, out)?;
            let extended = self.serving().map_or(Ok(()), Serving::extend_ahead);
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
    fn apply_batched<'j>(&mut self, jobs: &'j [Job]) -> Result<Replies<'j>, Interrupted<'j>> {
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
            result = self.serving().map_or(Ok(()), Serving::commit);
        }
        match result {
            Ok(()) => Ok(replies),
            Err(LogError::Write(e)) => {
                let undone_from = match self.serving().map(Serving::rollback) {
                    Some(Err(error)) => {
                        return Err(Interrupted {
                            error,
                            replies: Vec::new(),
                        });
                    }
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
                Err(Interrupted {
                    error: LogError::Write(e),
                    replies,
                })
            }
            Err(error) => Err(Interrupted {
                error,
                replies: Vec::new(),
            }),
        }
    }

    /// The careful path after a failed write: one commit per append, so
    /// exactly the appends that do not fit get a definite error. Returns the
    /// replies so far and, if a sync failed, why (the rest are then unserved).
    fn apply_one_by_one<'j>(&mut self, jobs: &'j [Job]) -> (Replies<'j>, Option<std::io::Error>) {
        let mut replies = Vec::with_capacity(jobs.len());
        for job in jobs {
            let outcome = self.apply(job).and_then(|reply| {
                self.serving().map_or(Ok(()), Serving::commit)?;
                Ok(reply)
            });
            let reply = match outcome {
                Ok(reply) => reply,
                Err(LogError::Write(e)) => {
                    if let Some(Err(failed)) = self.serving().map(Serving::rollback) {
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
        // Checked in this order: an unknown type is error 10 and any other
        // request is error 11 before init, whatever their fields.
        let serving = match (&msg.kind, &mut self.phase) {
            (Err(r), _) => return error(r.clone()),
            (Ok(Kind::Init), _) => None,
            (Ok(_), Phase::AwaitingInit) => {
                return error(Rejection::new(
                    ErrorCode::TemporarilyUnavailable,
                    "the node is not initialized yet: send init first",
                ));
            }
            (Ok(_), Phase::Serving(serving)) => Some(serving),
        };
        let request = match &msg.request {
            Ok(r) => r,
            Err(r) => return error(r.clone()),
        };
        let in_reply_to = msg.msg_id.expect("validated requests have a msg_id");
        match (serving, request) {
            (Some(serving), request) => serving.handle(request, in_reply_to),
            (None, Request::Init { node_id }) => Ok(match self.init(node_id) {
                Ok(()) => Reply::InitOk { in_reply_to },
                Err(r) => Reply::error(msg.msg_id, r),
            }),
            (None, _) => unreachable!("a request of kind init is an init request"),
        }
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
        match &self.phase {
            Phase::Serving(serving) => serving.node_id.clone(),
            Phase::AwaitingInit => message.addressed_to.as_ref().into(),
        }
    }

    fn serving(&mut self) -> Option<&mut Serving> {
        match &mut self.phase {
            Phase::Serving(serving) => Some(&mut **serving),
            Phase::AwaitingInit => None,
        }
    }

    fn init(&mut self, node_id: &str) -> Result<(), Rejection> {
        if let Phase::Serving(serving) = &self.phase {
            let current = &serving.node_id;
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
        self.phase = Phase::Serving(Box::new(Serving::open(&self.config, node_id)?));
        Ok(())
    }

    /// Writes `replies` in order with one flush, numbering them.
    fn send(&mut self, replies: Replies, out: &mut impl Write) -> Result<()> {
        let mut buf = Vec::new();
        for Outgoing { to, src, mut reply } in replies.into_iter().flatten() {
            if let (Reply::WalInfoOk { fsynced, .. }, Phase::Serving(serving)) =
                (&mut reply, &self.phase)
            {
                *fsynced = serving.all_durable();
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
