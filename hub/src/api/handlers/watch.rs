//! WATCH: a stream of `{"type": ..., "object": ...}` lines, one per change, in
//! revision order, from a resourceVersion; with bookmarks when asked, and an
//! `ERROR` event carrying a 410 `Expired` Status when the requested revision
//! is compacted (as kube-apiserver answers an etcd watch that is too old).
//!
//! Without a resourceVersion (or with `0`), the watch starts with an `ADDED`
//! event for every object that matches now, then the changes after that.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use flotilla_shared::model::{KindInfo, Object};
use serde_json::{Value, json};
use tokio::time::{Instant, Interval};

use super::list::{read_page, selectors};
use super::{Ctx, parse_resource_version};
use crate::api::server::wants_table;
use crate::api::status::ApiError;
use crate::api::storage::decode;
use crate::api::table::{self, IncludeObject};
use crate::store::{EventType, ListAt, WatchRequest, Watcher};

/// How events are written.
#[derive(Debug, Clone, Copy)]
struct Encoding {
    kind: &'static KindInfo,
    /// Each object as a one-row Table (`kubectl get -w`).
    table: Option<IncludeObject>,
}

/// About how many bytes of events go out in one chunk when several are
/// ready at once (a busy watch), instead of one chunk, TLS record and write
/// per event.
const CHUNK: usize = 64 << 10;

impl Encoding {
    fn event(&self, event_type: &str, object: &Object) -> Bytes {
        let mut out = Vec::with_capacity(1024);
        self.write_event(&mut out, event_type, object);
        Bytes::from(out)
    }

    /// Appends one event line (`{"type":…,"object":…}` and a newline).
    fn write_event(&self, out: &mut Vec<u8>, event_type: &str, object: &Object) {
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(event_type.as_bytes());
        out.extend_from_slice(b"\",\"object\":");
        let written = match self.table {
            Some(include) => {
                let mut t = table::table(
                    self.kind,
                    std::slice::from_ref(object),
                    include,
                    SystemTime::now(),
                );
                t["metadata"] = json!({ "resourceVersion": object.metadata().resource_version });
                serde_json::to_writer(&mut *out, &t)
            }
            // Straight to bytes: no intermediate `Value` tree.
            None => serde_json::to_writer(&mut *out, object),
        };
        if written.is_err() {
            out.extend_from_slice(b"null");
        }
        out.extend_from_slice(b"}\n");
    }

    /// Appends the line for what the watcher answered; `false` when the
    /// watch must end after it.
    fn write_answer(
        &self,
        out: &mut Vec<u8>,
        answer: Result<crate::store::WatchEvent, crate::store::ReadError>,
    ) -> bool {
        let event = match answer {
            Ok(event) => event,
            Err(e) => {
                out.extend_from_slice(&error_event(&crate::api::storage::read_error(e)));
                return false;
            }
        };
        match decode(&event.value, event.revision) {
            Ok(object) => {
                let event_type = match event.event_type {
                    EventType::Added => "ADDED",
                    EventType::Modified => "MODIFIED",
                    EventType::Deleted => "DELETED",
                };
                self.write_event(out, event_type, &object);
                true
            }
            Err(e) => {
                out.extend_from_slice(&error_event(&e));
                false
            }
        }
    }

    fn bookmark(&self, revision: u64) -> Bytes {
        line(&json!({
            "type": "BOOKMARK",
            "object": {
                "kind": self.kind.kind,
                "apiVersion": self.kind.api_version,
                "metadata": { "resourceVersion": revision.to_string() },
            },
        }))
    }
}

fn line(value: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(value).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

fn error_event(error: &ApiError) -> Bytes {
    line(&json!({ "type": "ERROR", "object": error.status() }))
}

struct Stream {
    encoding: Encoding,
    /// Lines to send before reading the watcher.
    queued: VecDeque<Bytes>,
    watcher: Option<Watcher>,
    bookmarks: Option<Interval>,
    deadline: Instant,
}

impl Stream {
    /// The next chunk: whatever is ready, at least one line.
    async fn next(&mut self) -> Option<Bytes> {
        if let Some(first) = self.queued.pop_front() {
            if self
                .queued
                .front()
                .is_none_or(|l| first.len() + l.len() > CHUNK)
            {
                return Some(first);
            }
            let mut out = first.to_vec();
            while let Some(line) = self.queued.front() {
                if out.len() + line.len() > CHUNK {
                    break;
                }
                out.extend_from_slice(line);
                self.queued.pop_front();
            }
            return Some(Bytes::from(out));
        }
        let watcher = self.watcher.as_mut()?;
        let tick = async {
            match &mut self.bookmarks {
                Some(interval) => {
                    interval.tick().await;
                }
                None => std::future::pending().await,
            }
        };
        let line = tokio::select! {
            answer = watcher.next() => {
                let mut out = Vec::with_capacity(4096);
                let mut going = self.encoding.write_answer(&mut out, answer);
                // And the events already read, in the same chunk.
                while going && out.len() < CHUNK {
                    let Some(event) = watcher.try_next() else { break };
                    going = self.encoding.write_answer(&mut out, Ok(event));
                }
                if !going {
                    self.watcher = None;
                }
                Bytes::from(out)
            }
            () = tick => self.encoding.bookmark(watcher.progress()),
            () = tokio::time::sleep_until(self.deadline) => {
                self.watcher = None;
                return None;
            }
        };
        Some(line)
    }
}

pub async fn watch(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let (labels, fields) = selectors(ctx)?;
    let encoding = Encoding {
        kind: ctx.kind,
        table: wants_table(&ctx.headers).then(|| ctx.include_object()),
    };
    let mut queued = VecDeque::new();
    let from = match ctx
        .params
        .get("resourceVersion")
        .filter(|v| !v.is_empty() && *v != "0")
    {
        Some(text) => parse_resource_version(text)?,
        None => {
            // The current state first, as ADDED events, every page of it.
            let mut page = read_page(ctx).await?;
            let revision = page.revision;
            loop {
                for item in &page.items {
                    let object = decode(&item.object.value, item.object.resource_version)?;
                    queued.push_back(encoding.event("ADDED", &object));
                }
                let Some(next) = page.next.take() else { break };
                let mut request = crate::store::ListRequest::new(ctx.kind.kind);
                request.namespace =
                    (!ctx.info.namespace.is_empty()).then(|| ctx.info.namespace.clone());
                request.labels = labels.clone();
                request.fields = fields.clone();
                request.at = ListAt::Continue(next);
                page = ctx
                    .api
                    .storage
                    .list(request, crate::replica::Consistency::Stale)
                    .await?;
            }
            revision
        }
    };
    let request = WatchRequest {
        from,
        kind: Some(ctx.kind.kind.to_owned()),
        namespace: (!ctx.info.namespace.is_empty()).then(|| ctx.info.namespace.clone()),
        labels,
        fields,
    };
    let watcher = match ctx.api.storage.watch(request).await {
        Ok(watcher) => Some(watcher),
        Err(e @ ApiError::Expired(_)) => {
            queued.push_back(error_event(&e));
            None
        }
        Err(e) => return Err(e),
    };
    let config = &ctx.api.config;
    let timeout = ctx
        .params
        .number("timeoutSeconds")?
        .map(Duration::from_secs)
        .unwrap_or(config.max_watch)
        .min(config.max_watch);
    let bookmarks = ctx.params.flag("allowWatchBookmarks").then(|| {
        let period = config.bookmark_interval;
        tokio::time::interval_at(Instant::now() + period, period)
    });
    let stream = Stream {
        encoding,
        queued,
        watcher,
        bookmarks,
        deadline: Instant::now() + timeout,
    };
    let body = futures_util::stream::unfold(stream, |mut stream| async move {
        let line = stream.next().await?;
        Some((Ok::<_, std::convert::Infallible>(line), stream))
    });
    let mut response = (StatusCode::OK, Body::from_stream(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(response)
}
