//! [`MemoryRuntime`]: containers as records in memory, for tests of the code
//! that drives an [`OciRuntime`]. It follows the real runtime's rules (ids,
//! states, which verb is allowed when) and lets a test act for the world:
//! make a container exit, be OOM-killed, ignore a signal, or make a verb fail.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::{
    ContainerInfo, CreateRequest, ExecOutput, Exit, OciRuntime, RuntimeError, Status, validate_id,
};

/// A verb that a test can make fail once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verb {
    Create,
    Start,
    Kill,
    Delete,
    Exec,
}

impl Verb {
    fn name(self) -> &'static str {
        match self {
            Verb::Create => "create",
            Verb::Start => "start",
            Verb::Kill => "kill",
            Verb::Delete => "delete",
            Verb::Exec => "exec",
        }
    }
}

/// What an exec in a container does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecBehaviour {
    /// It prints this and exits with its code.
    Output(ExecOutput),
    /// It never finishes: the call fails with [`RuntimeError::ExecTimeout`].
    Hang,
}

#[derive(Clone, Debug)]
struct Record {
    bundle: PathBuf,
    shim_dir: PathBuf,
    status: Status,
    pid: u32,
    exit: Option<Exit>,
    ignored_signals: BTreeSet<i32>,
    exec: Option<ExecBehaviour>,
}

#[derive(Debug, Default)]
struct Inner {
    containers: BTreeMap<String, Record>,
    failures: HashMap<(Verb, String), String>,
    oom_killed: BTreeSet<String>,
    calls: Vec<String>,
    next_pid: u32,
}

/// An [`OciRuntime`] whose containers are records. Clones share the records.
#[derive(Clone, Debug, Default)]
pub struct MemoryRuntime {
    inner: Arc<Mutex<Inner>>,
    now_ms: Arc<AtomicU64>,
}

const MEMORY_BINARY: &str = "memory-runtime";

impl MemoryRuntime {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A test that panicked while holding the lock has failed already;
        // the records themselves are still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the clock that stamps exits (`finished_at_ms`).
    pub fn set_now_ms(&self, now_ms: u64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }

    /// Makes the next `verb` on `id` fail with `message`, as the runtime's
    /// own error would read.
    pub fn fail_next(&self, verb: Verb, id: &str, message: &str) {
        self.lock()
            .failures
            .insert((verb, id.to_owned()), message.to_owned());
    }

    /// The container's process exits with `code` (it must be running).
    pub fn exit(&self, id: &str, code: i32) -> Result<(), RuntimeError> {
        self.end(id, code, None)
    }

    /// The kernel's OOM killer kills the container: exit 137 by SIGKILL,
    /// and [`MemoryRuntime::was_oom_killed`] says so.
    pub fn oom_kill(&self, id: &str) -> Result<(), RuntimeError> {
        self.end(id, 128 + libc::SIGKILL, Some(libc::SIGKILL))?;
        self.lock().oom_killed.insert(id.to_owned());
        Ok(())
    }

    /// Whether [`MemoryRuntime::oom_kill`] ended this container.
    pub fn was_oom_killed(&self, id: &str) -> bool {
        self.lock().oom_killed.contains(id)
    }

    /// The container ignores `signal` from now on (as a process that
    /// handles SIGTERM and keeps running).
    pub fn ignore_signal(&self, id: &str, signal: i32) -> Result<(), RuntimeError> {
        let mut inner = self.lock();
        let record = find(&mut inner, id)?;
        record.ignored_signals.insert(signal);
        Ok(())
    }

    /// What execs in the container do (default: exit 0, no output).
    pub fn on_exec(&self, id: &str, behaviour: ExecBehaviour) -> Result<(), RuntimeError> {
        let mut inner = self.lock();
        find(&mut inner, id)?.exec = Some(behaviour);
        Ok(())
    }

    /// Every call so far, as `"<verb> <id>"` (`"kill <id> <signal>"`,
    /// `"delete <id> force"`), in order.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// The bundle and shim directory a container was created with.
    pub fn paths(&self, id: &str) -> Option<(PathBuf, PathBuf)> {
        self.lock()
            .containers
            .get(id)
            .map(|r| (r.bundle.clone(), r.shim_dir.clone()))
    }

    fn end(&self, id: &str, code: i32, signal: Option<i32>) -> Result<(), RuntimeError> {
        let now = self.now_ms.load(Ordering::SeqCst);
        let mut inner = self.lock();
        let record = find(&mut inner, id)?;
        if !matches!(
            record.status,
            Status::Running | Status::Created | Status::Paused
        ) {
            return Err(wrong(
                id,
                record.status,
                "exit",
                "created, running or paused",
            ));
        }
        stop(record, code, signal, now);
        Ok(())
    }

    /// Records the call and takes a pending failure for it.
    fn begin(
        &self,
        verb: Verb,
        id: &str,
        call: String,
    ) -> Result<MutexGuard<'_, Inner>, RuntimeError> {
        validate_id(id)?;
        let mut inner = self.lock();
        inner.calls.push(call);
        if let Some(message) = inner.failures.remove(&(verb, id.to_owned())) {
            return Err(RuntimeError::Command {
                binary: PathBuf::from(MEMORY_BINARY),
                command: verb.name(),
                id: id.to_owned(),
                message,
            });
        }
        Ok(inner)
    }
}

fn find<'a>(inner: &'a mut Inner, id: &str) -> Result<&'a mut Record, RuntimeError> {
    inner
        .containers
        .get_mut(id)
        .ok_or_else(|| RuntimeError::NotFound { id: id.to_owned() })
}

fn wrong(id: &str, status: Status, action: &'static str, wanted: &'static str) -> RuntimeError {
    RuntimeError::WrongStatus {
        id: id.to_owned(),
        status,
        action,
        wanted,
    }
}

fn stop(record: &mut Record, code: i32, signal: Option<i32>, now_ms: u64) {
    record.status = Status::Stopped;
    record.exit = Some(Exit {
        code,
        signal,
        finished_at_ms: now_ms,
    });
}

fn info(id: &str, record: &Record) -> ContainerInfo {
    ContainerInfo {
        id: id.to_owned(),
        status: record.status,
        pid: (record.status != Status::Stopped).then_some(record.pid),
        exit: record.exit,
    }
}

impl OciRuntime for MemoryRuntime {
    async fn create(&self, request: &CreateRequest) -> Result<ContainerInfo, RuntimeError> {
        let id = request.id.as_str();
        let mut inner = self.begin(Verb::Create, id, format!("create {id}"))?;
        if inner.containers.contains_key(id) {
            return Err(RuntimeError::AlreadyExists { id: id.to_owned() });
        }
        inner.next_pid += 1;
        let record = Record {
            bundle: request.bundle.clone(),
            shim_dir: request.shim_dir.clone(),
            status: Status::Created,
            pid: 1000 + inner.next_pid,
            exit: None,
            ignored_signals: BTreeSet::new(),
            exec: None,
        };
        let created = info(id, &record);
        inner.containers.insert(id.to_owned(), record);
        Ok(created)
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        let mut inner = self.begin(Verb::Start, id, format!("start {id}"))?;
        let record = find(&mut inner, id)?;
        if record.status != Status::Created {
            return Err(wrong(id, record.status, "start", "created"));
        }
        record.status = Status::Running;
        Ok(())
    }

    async fn run(&self, request: &CreateRequest) -> Result<ContainerInfo, RuntimeError> {
        let created = self.create(request).await?;
        if let Err(e) = self.start(&request.id).await {
            // As a runtime binary's `run` does: no container is left.
            self.lock().containers.remove(&request.id);
            return Err(e);
        }
        Ok(ContainerInfo {
            status: Status::Running,
            ..created
        })
    }

    async fn kill(&self, id: &str, signal: i32) -> Result<(), RuntimeError> {
        let now = self.now_ms.load(Ordering::SeqCst);
        let mut inner = self.begin(Verb::Kill, id, format!("kill {id} {signal}"))?;
        let record = find(&mut inner, id)?;
        if record.status == Status::Stopped {
            return Err(wrong(
                id,
                record.status,
                "kill",
                "created, running or paused",
            ));
        }
        if signal != 0 && (signal == libc::SIGKILL || !record.ignored_signals.contains(&signal)) {
            stop(record, 128 + signal, Some(signal), now);
        }
        Ok(())
    }

    async fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        let call = if force {
            format!("delete {id} force")
        } else {
            format!("delete {id}")
        };
        let mut inner = self.begin(Verb::Delete, id, call)?;
        let record = find(&mut inner, id)?;
        if !force && !matches!(record.status, Status::Stopped | Status::Created) {
            return Err(wrong(id, record.status, "delete", "stopped (or force)"));
        }
        inner.containers.remove(id);
        Ok(())
    }

    async fn state(&self, id: &str) -> Result<Option<ContainerInfo>, RuntimeError> {
        validate_id(id)?;
        Ok(self.lock().containers.get(id).map(|r| info(id, r)))
    }

    async fn list(&self) -> Result<Vec<ContainerInfo>, RuntimeError> {
        Ok(self
            .lock()
            .containers
            .iter()
            .map(|(id, r)| info(id, r))
            .collect())
    }

    async fn wait(&self, id: &str) -> Result<Option<ContainerInfo>, RuntimeError> {
        loop {
            match self.state(id).await? {
                Some(info) if info.status != Status::Stopped => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => return Ok(other),
            }
        }
    }

    async fn exec(
        &self,
        id: &str,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, RuntimeError> {
        let mut inner = self.begin(Verb::Exec, id, format!("exec {id} {}", argv.join(" ")))?;
        let record = find(&mut inner, id)?;
        if record.status != Status::Running {
            return Err(wrong(id, record.status, "exec", "running"));
        }
        match record.exec.clone() {
            None => Ok(ExecOutput {
                exit_code: 0,
                stdout: Vec::new(),
                stderr: Vec::new(),
            }),
            Some(ExecBehaviour::Output(output)) => Ok(output),
            Some(ExecBehaviour::Hang) => Err(RuntimeError::ExecTimeout {
                id: id.to_owned(),
                timeout,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(id: &str) -> CreateRequest {
        CreateRequest {
            id: id.to_owned(),
            bundle: PathBuf::from("/bundles").join(id),
            shim_dir: PathBuf::from("/shims").join(id),
        }
    }

    async fn running(rt: &MemoryRuntime, id: &str) {
        rt.create(&request(id)).await.expect("create");
        rt.start(id).await.expect("start");
    }

    #[tokio::test]
    async fn a_container_goes_created_running_stopped_with_its_exit_code() {
        let rt = MemoryRuntime::new();
        let created = rt.create(&request("a")).await.expect("create");
        assert_eq!(created.status, Status::Created);
        assert!(created.pid.is_some());
        rt.start("a").await.expect("start");
        assert_eq!(
            rt.state("a").await.unwrap().unwrap().status,
            Status::Running
        );
        rt.set_now_ms(42);
        rt.exit("a", 3).expect("exit");
        let state = rt.state("a").await.unwrap().unwrap();
        assert_eq!(state.status, Status::Stopped);
        assert_eq!(state.pid, None);
        assert_eq!(
            state.exit,
            Some(Exit {
                code: 3,
                signal: None,
                finished_at_ms: 42
            })
        );
        rt.delete("a", false).await.expect("delete");
        assert_eq!(rt.state("a").await.unwrap(), None);
        assert_eq!(rt.calls(), ["create a", "start a", "delete a"]);
    }

    #[tokio::test]
    async fn sigterm_ends_a_container_with_143_unless_it_ignores_it() {
        let rt = MemoryRuntime::new();
        running(&rt, "a").await;
        running(&rt, "b").await;
        rt.ignore_signal("b", libc::SIGTERM).expect("ignore");
        rt.kill("a", libc::SIGTERM).await.expect("kill a");
        rt.kill("b", libc::SIGTERM).await.expect("kill b");
        let a = rt.state("a").await.unwrap().unwrap();
        assert_eq!(a.exit.map(|e| (e.code, e.signal)), Some((143, Some(15))));
        assert_eq!(
            rt.state("b").await.unwrap().unwrap().status,
            Status::Running
        );
        rt.kill("b", libc::SIGKILL).await.expect("kill -9");
        let b = rt.state("b").await.unwrap().unwrap();
        assert_eq!(b.exit.map(|e| e.code), Some(137));
    }

    #[tokio::test]
    async fn an_oom_kill_reads_as_137_and_is_remembered() {
        let rt = MemoryRuntime::new();
        running(&rt, "a").await;
        rt.oom_kill("a").expect("oom");
        assert!(rt.was_oom_killed("a"));
        let a = rt.state("a").await.unwrap().unwrap();
        assert_eq!(a.exit.map(|e| (e.code, e.signal)), Some((137, Some(9))));
    }

    #[tokio::test]
    async fn an_injected_failure_fails_once_and_changes_nothing() {
        let rt = MemoryRuntime::new();
        rt.fail_next(Verb::Create, "a", "no space left on device");
        let err = rt.create(&request("a")).await.unwrap_err();
        assert!(err.to_string().contains("no space left on device"), "{err}");
        assert!(err.retry_helps());
        assert_eq!(rt.list().await.unwrap(), vec![]);
        rt.create(&request("a")).await.expect("second create works");
    }

    #[tokio::test]
    async fn verbs_out_of_order_are_refused() {
        let rt = MemoryRuntime::new();
        assert!(matches!(
            rt.start("nope").await,
            Err(RuntimeError::NotFound { .. })
        ));
        running(&rt, "a").await;
        assert!(matches!(
            rt.create(&request("a")).await,
            Err(RuntimeError::AlreadyExists { .. })
        ));
        assert!(matches!(
            rt.start("a").await,
            Err(RuntimeError::WrongStatus { .. })
        ));
        assert!(matches!(
            rt.delete("a", false).await,
            Err(RuntimeError::WrongStatus { .. })
        ));
        rt.delete("a", true).await.expect("forced delete");
        assert!(matches!(
            rt.create(&request("../x")).await,
            Err(RuntimeError::InvalidId { .. })
        ));
    }

    #[tokio::test]
    async fn exec_returns_the_configured_output_or_times_out() {
        let rt = MemoryRuntime::new();
        running(&rt, "a").await;
        let out = ExecOutput {
            exit_code: 1,
            stdout: b"not ready".to_vec(),
            stderr: Vec::new(),
        };
        rt.on_exec("a", ExecBehaviour::Output(out.clone())).unwrap();
        let argv = vec!["cat".to_owned(), "/ready".to_owned()];
        assert_eq!(
            rt.exec("a", &argv, Duration::from_secs(1)).await.unwrap(),
            out
        );
        rt.on_exec("a", ExecBehaviour::Hang).unwrap();
        assert!(matches!(
            rt.exec("a", &argv, Duration::from_secs(1)).await,
            Err(RuntimeError::ExecTimeout { .. })
        ));
        rt.exit("a", 0).unwrap();
        assert!(matches!(
            rt.exec("a", &argv, Duration::from_secs(1)).await,
            Err(RuntimeError::WrongStatus { .. })
        ));
    }
}
