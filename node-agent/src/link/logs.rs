//! `kubectl logs` on the device: a [`LogRequest`] on the device's
//! `logs/request` topic is answered with [`LogChunk`]s on
//! `logs/response/{id}`, numbered from 0, the last one marked `eof` (with
//! an error when there is no such log). The logs are the CRI files the
//! shims write (`runtime::log`): a container's current run's, rotated ones
//! first, or its previous run's (`--previous`). Rendered as kubelet does:
//! the text only, `--timestamps` prefixing each line with its time,
//! `--since`, `--tail` and `--limit-bytes` applied. A followed stream
//! (`-f`) is polled for more, follows the file through rotation, and ends
//! when the container has exited and everything was sent, when the hub
//! sends a [`LogCancel`], or with the connection.

use std::collections::HashMap;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use flotilla_shared::wire::{
    self, LogCancel, LogChunk, LogRequest, Message,
    topics::{Topic, TopicKind},
};
use rumqttc::{AsyncClient, QoS};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::runtime::files;

/// Log bytes per chunk.
pub const CHUNK: usize = 16 * 1024;
/// How often a followed log is looked at for more.
const FOLLOW_POLL: Duration = Duration::from_millis(250);
/// The most a followed log is read at one poll.
const FOLLOW_READ: usize = 256 * 1024;

/// The log streams of one connection; dropping it stops them.
#[derive(Debug, Default)]
pub struct Streams {
    running: HashMap<u64, tokio::task::JoinHandle<()>>,
}

impl Drop for Streams {
    fn drop(&mut self) {
        for task in self.running.values() {
            task.abort();
        }
    }
}

impl Streams {
    /// Starts or cancels a stream as `message` asks.
    pub fn handle(&mut self, node: &str, state_dir: &Path, client: &AsyncClient, message: Message) {
        self.running.retain(|_, task| !task.is_finished());
        match message {
            Message::LogRequest(request) => {
                let id = request.request_id;
                let task = tokio::spawn(serve(
                    node.to_owned(),
                    state_dir.to_owned(),
                    client.clone(),
                    request,
                ));
                if let Some(previous) = self.running.insert(id, task) {
                    previous.abort();
                }
            }
            Message::LogCancel(LogCancel { request_id }) => {
                if let Some(task) = self.running.remove(&request_id) {
                    task.abort();
                }
            }
            other => tracing::warn!(kind = other.kind(), "not a log request; ignored"),
        }
    }
}

/// Where a request's log is.
#[derive(Debug, PartialEq, Eq)]
pub struct Located {
    /// Oldest first; the last one is the one written to.
    pub files: Vec<PathBuf>,
    /// The run's shim directory (its `exit` file ends a followed stream);
    /// `None` for a previous run's log.
    pub shim_dir: Option<PathBuf>,
}

/// Finds the log `request` asks for under the agent's state directory.
pub fn locate(state_dir: &Path, request: &LogRequest) -> Result<Located, String> {
    let (uid, container) = (&request.pod_uid, &request.container);
    // They become paths: nothing but a uid and a container name.
    if !crate::agent::valid_uid(uid) {
        return Err(format!("pod uid {uid:?} is not a UUID"));
    }
    if !crate::agent::valid_container_name(container) {
        return Err(format!(
            "container name {container:?} is not a DNS-1123 label"
        ));
    }
    if request.previous {
        let file = state_dir
            .join("pods")
            .join(uid)
            .join("logs")
            .join(format!("{container}.previous.log"));
        return if file.exists() {
            Ok(Located {
                files: vec![file],
                shim_dir: None,
            })
        } else {
            Err(format!(
                "previous terminated container \"{container}\" in pod \"{uid}\" not found"
            ))
        };
    }
    // Runs are `<uid>-<container>-<attempt>`: the latest attempt is current.
    let prefix = format!("{uid}-{container}-");
    let latest = std::fs::read_dir(state_dir.join("containers"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let attempt: u64 = name.strip_prefix(&prefix)?.parse().ok()?;
            Some((attempt, entry.path()))
        })
        .max_by_key(|(attempt, _)| *attempt);
    let Some((_, dir)) = latest else {
        return Err(format!(
            "container \"{container}\" in pod \"{uid}\" is waiting to start"
        ));
    };
    let shim_dir = dir.join("shim");
    let current = shim_dir.join(files::CONTAINER_LOG);
    let mut rotated: Vec<(u32, PathBuf)> = (1..=64)
        .map(|n| (n, shim_dir.join(format!("{}.{n}", files::CONTAINER_LOG))))
        .take_while(|(_, path)| path.exists())
        .collect();
    rotated.reverse();
    let mut files: Vec<PathBuf> = rotated.into_iter().map(|(_, path)| path).collect();
    files.push(current);
    Ok(Located {
        files,
        shim_dir: Some(shim_dir),
    })
}

/// How CRI records become what `kubectl logs` shows.
#[derive(Debug, Clone, Default)]
pub struct Render {
    pub timestamps: bool,
    /// Records before this are left out.
    pub since: Option<OffsetDateTime>,
    /// Inside a line split into partial records.
    continuing: bool,
}

impl Render {
    pub fn new(request: &LogRequest, now: OffsetDateTime) -> Self {
        Render {
            timestamps: request.timestamps,
            since: request
                .since_seconds
                .map(|s| now - time::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX))),
            continuing: false,
        }
    }

    /// Appends the text of the complete records in `records` (lines of
    /// `<time> <stream> <P|F> <text>`) to `out`.
    pub fn records(&mut self, records: &[u8], out: &mut Vec<u8>) {
        for line in records.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let mut fields = line.splitn(4, |b| *b == b' ');
            let (Some(at), Some(_stream), Some(tag)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let text = fields.next().unwrap_or_default();
            if let Some(since) = self.since {
                let time = std::str::from_utf8(at)
                    .ok()
                    .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
                if time.is_some_and(|t| t < since) {
                    continue;
                }
            }
            if self.timestamps && !self.continuing {
                out.extend_from_slice(at);
                out.push(b' ');
            }
            out.extend_from_slice(text);
            self.continuing = tag == b"P";
            if !self.continuing {
                out.push(b'\n');
            }
        }
    }
}

/// The last `lines` lines of `text`.
pub fn tail(text: &[u8], lines: u64) -> &[u8] {
    if lines == 0 {
        return &[];
    }
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let mut seen = 0;
    for (i, byte) in body.iter().enumerate().rev() {
        if *byte == b'\n' {
            seen += 1;
            if seen == lines {
                return &text[i + 1..];
            }
        }
    }
    text
}

/// Sends one request's chunks.
struct Sender {
    client: AsyncClient,
    topic: String,
    request_id: u64,
    seq: u64,
    /// Bytes left before `limit_bytes`.
    left: Option<u64>,
}

impl Sender {
    /// Sends `data` in chunks; false once the limit is reached or the link
    /// is gone.
    async fn send(&mut self, mut data: &[u8]) -> bool {
        if let Some(left) = self.left {
            data = &data[..data.len().min(usize::try_from(left).unwrap_or(usize::MAX))];
        }
        for piece in data.chunks(CHUNK) {
            if !self.chunk(piece.to_vec(), false, None).await {
                return false;
            }
        }
        if let Some(left) = &mut self.left {
            *left -= data.len() as u64;
            return *left > 0;
        }
        true
    }

    async fn chunk(&mut self, data: Vec<u8>, eof: bool, error: Option<String>) -> bool {
        let chunk = LogChunk {
            request_id: self.request_id,
            seq: self.seq,
            data,
            eof,
            error,
        };
        self.seq += 1;
        let payload = wire::encode(&Message::LogChunk(chunk));
        self.client
            .publish(&self.topic, QoS::AtLeastOnce, false, payload)
            .await
            .is_ok()
    }

    async fn finish(&mut self, error: Option<String>) {
        self.chunk(Vec::new(), true, error).await;
    }
}

/// Answers one request.
async fn serve(node: String, state_dir: PathBuf, client: AsyncClient, request: LogRequest) {
    let Ok(topic) = Topic::new(
        &node,
        TopicKind::LogResponse {
            request_id: request.request_id,
        },
    ) else {
        return;
    };
    let mut sender = Sender {
        client,
        topic: topic.to_string(),
        request_id: request.request_id,
        seq: 0,
        left: request.limit_bytes,
    };
    let located = match locate(&state_dir, &request) {
        Ok(located) => located,
        Err(error) => return sender.finish(Some(error)).await,
    };
    let mut render = Render::new(&request, OffsetDateTime::now_utc());
    // What is there now, read off the agent's thread (up to a few MiB).
    let files = located.files.clone();
    let (mut render, text, mut follower) = match tokio::task::spawn_blocking(move || {
        let mut text = Vec::new();
        let mut follower = None;
        for (i, path) in files.iter().enumerate() {
            let Ok(mut file) = std::fs::File::open(path) else {
                continue;
            };
            let mut bytes = Vec::new();
            if file.read_to_end(&mut bytes).is_err() {
                continue;
            }
            // A record still being written waits for the next read.
            let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            render.records(&bytes[..complete], &mut text);
            if i + 1 == files.len() {
                follower = Some(Follower {
                    path: path.clone(),
                    file,
                    offset: complete as u64,
                });
            }
        }
        (render, text, follower)
    })
    .await
    {
        Ok(read) => read,
        Err(e) => return sender.finish(Some(format!("reading the log: {e}"))).await,
    };
    let text = match request.tail_lines {
        Some(lines) => tail(&text, lines),
        None => &text[..],
    };
    if !sender.send(text).await || !request.follow {
        return sender.finish(None).await;
    }
    let Some(shim_dir) = located.shim_dir else {
        return sender.finish(None).await;
    };
    let current = located.files.last().cloned().unwrap_or_default();
    loop {
        // Off the agent's thread: file reads, at most FOLLOW_READ a poll.
        let polled = tokio::task::spawn_blocking({
            let (shim_dir, current) = (shim_dir.clone(), current.clone());
            move || {
                // The exit file first: what was written before it is read after.
                let exited =
                    files::read_exit(&shim_dir).ok().flatten().is_some() || !shim_dir.exists();
                let mut more = Vec::new();
                let mut caught_up = true;
                match &mut follower {
                    Some(follower) => caught_up = follower.read(&mut render, &mut more),
                    None => {
                        if let Ok(file) = std::fs::File::open(&current) {
                            follower = Some(Follower {
                                path: current,
                                file,
                                offset: 0,
                            });
                            caught_up = false;
                        }
                    }
                }
                (follower, render, more, exited && caught_up)
            }
        })
        .await;
        let more;
        let ended;
        match polled {
            Ok((f, r, m, e)) => (follower, render, more, ended) = (f, r, m, e),
            Err(e) => return sender.finish(Some(format!("reading the log: {e}"))).await,
        }
        if !more.is_empty() && !sender.send(&more).await {
            return sender.finish(None).await;
        }
        if ended {
            return sender.finish(None).await;
        }
        if more.len() < FOLLOW_READ / 2 {
            tokio::time::sleep(FOLLOW_POLL).await;
        }
    }
}

/// The file a followed stream reads, and how far.
struct Follower {
    path: PathBuf,
    file: std::fs::File,
    offset: u64,
}

impl Follower {
    /// Renders the complete records written since the last read (at most
    /// about [`FOLLOW_READ`] bytes); follows a rotation (the file renamed
    /// away, a new one in its place). True when it read all there was.
    fn read(&mut self, render: &mut Render, out: &mut Vec<u8>) -> bool {
        if !self.drain(render, out) {
            return false;
        }
        let replaced = std::fs::metadata(&self.path)
            .ok()
            .zip(self.file.metadata().ok())
            .is_some_and(|(now, open)| now.ino() != open.ino());
        if replaced && let Ok(file) = std::fs::File::open(&self.path) {
            self.file = file;
            self.offset = 0;
            return self.drain(render, out);
        }
        true
    }

    /// True when it reached the end of the file.
    fn drain(&mut self, render: &mut Render, out: &mut Vec<u8>) -> bool {
        let mut bytes = Vec::new();
        let read = self.file.seek(SeekFrom::Start(self.offset)).and_then(|_| {
            (&mut self.file)
                .take(FOLLOW_READ as u64)
                .read_to_end(&mut bytes)
        });
        if read.is_err() {
            return true;
        }
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        render.records(&bytes[..complete], out);
        self.offset += complete as u64;
        bytes.len() < FOLLOW_READ
    }
}

#[cfg(test)]
mod tests;
