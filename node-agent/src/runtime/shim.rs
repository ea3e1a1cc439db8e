//! `flotilla-agent shim`: the small process that watches one container, in
//! the manner of conmon. The agent starts it; it
//!
//! 1. leaves the agent's session (`setsid`) and becomes a child subreaper,
//!    so the container, once the runtime exits, is reparented to it;
//! 2. runs `<runtime> create --pid-file <dir>/pid` (or `run -d`, created and
//!    started in one call, with `--start`) with two pipes as the container's
//!    stdout and stderr, and waits for it;
//! 3. writes `<dir>/shim.pid` (its pid and start time), which lets an agent
//!    that restarted find it, then reports the container's pid on its stdout
//!    (one line) and closes it: the agent waits for that line, and takes an
//!    end of file without it for a failure;
//! 4. drains the pipes into the rotating CRI log `<dir>/container.log` and
//!    reaps children with `waitpid(-1)` (safe here: single-threaded, and its
//!    only children are the runtime and the container);
//! 5. when the container's process ends, writes `<dir>/exit` atomically and
//!    exits.
//!
//! It keeps running when the agent stops or is killed, so exit codes
//! survive agent restarts. If the shim itself is killed, the container is
//! reparented to init, which reaps it without telling anyone: the runtime
//! then reports it stopped, with no exit file, and the agent reports the exit
//! as unknown. Its output pipes lose their reader, so the container's next
//! write to stdout or stderr fails with EPIPE (SIGPIPE by default).
//!
//! Under systemd the agent's unit needs `KillMode=process` (or the shims
//! moved to a cgroup of their own, as podman does with conmon); otherwise
//! stopping the agent kills every shim with it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::fd::{AsFd as _, BorrowedFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

use super::Exit;
use super::files::{self, ShimRecord};
use super::log::{CriLog, LogLimits, Stream};
use crate::sys::process::{self as sysproc, Reaped, WaitStatus};

/// The shim's command line; the agent builds it in [`ShimArgs::to_args`].
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct ShimArgs {
    /// The OCI runtime binary (runc or crun).
    #[arg(long)]
    pub runtime: PathBuf,
    /// The runtime's state directory (`--root`).
    #[arg(long)]
    pub root: PathBuf,
    /// The OCI bundle.
    #[arg(long)]
    pub bundle: PathBuf,
    /// The container id.
    #[arg(long)]
    pub id: String,
    /// The shim's directory (pid, shim.pid, exit, logs).
    #[arg(long)]
    pub dir: PathBuf,
    /// Start the container too (`run -d` instead of `create`).
    #[arg(long)]
    pub start: bool,
    /// Rotate the container log when it would grow past this many bytes.
    #[arg(long, default_value_t = LogLimits::default().max_bytes)]
    pub log_max_bytes: u64,
    /// Container log files kept, the current one included.
    #[arg(long, default_value_t = LogLimits::default().max_files)]
    pub log_max_files: u32,
}

impl ShimArgs {
    /// The arguments after `shim` that reproduce these.
    pub fn to_args(&self) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = Vec::new();
        for (flag, value) in [
            ("--runtime", self.runtime.as_os_str()),
            ("--root", self.root.as_os_str()),
            ("--bundle", self.bundle.as_os_str()),
            ("--id", self.id.as_ref()),
            ("--dir", self.dir.as_os_str()),
        ] {
            args.push(flag.into());
            args.push(value.to_owned());
        }
        if self.start {
            args.push("--start".into());
        }
        args.push(format!("--log-max-bytes={}", self.log_max_bytes).into());
        args.push(format!("--log-max-files={}", self.log_max_files).into());
        args
    }
}

/// Why the shim stopped before recording an exit.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("{what}: {source}")]
    Setup {
        what: &'static str,
        source: io::Error,
    },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("running {binary}: {source}")]
    Spawn { binary: PathBuf, source: io::Error },
    #[error("{binary} {command} {id} failed ({status}): {message}")]
    CreateFailed {
        binary: PathBuf,
        command: &'static str,
        id: String,
        status: String,
        message: String,
    },
}

/// Runs the shim to the end: returns once the container's exit is recorded.
pub fn run(args: &ShimArgs) -> Result<Exit, ShimError> {
    let setup = |what| move |source| ShimError::Setup { what, source };
    // EPERM means we already lead a process group (someone started us with
    // one of our own): then we are out of the starter's group already.
    if let Err(e) = sysproc::setsid()
        && e.raw_os_error() != Some(libc::EPERM)
    {
        return Err(setup("setsid")(e));
    }
    sysproc::set_child_subreaper().map_err(setup("becoming a child subreaper"))?;

    let log_path = args.dir.join(files::CONTAINER_LOG);
    let limits = LogLimits {
        max_bytes: args.log_max_bytes,
        max_files: args.log_max_files,
    };
    let mut log = CriLog::open(&log_path, limits).map_err(|source| ShimError::Io {
        path: log_path.clone(),
        source,
    })?;
    let (stdout_r, stdout_w) = io::pipe().map_err(setup("creating the stdout pipe"))?;
    let (stderr_r, stderr_w) = io::pipe().map_err(setup("creating the stderr pipe"))?;
    for reader in [&stdout_r, &stderr_r] {
        sysproc::set_nonblocking(reader.as_fd()).map_err(setup("making a pipe non-blocking"))?;
    }

    let pid_path = args.dir.join(files::PID);
    let command = if args.start { "run" } else { "create" };
    let status = {
        // The command owns the pipes' write ends; it is dropped right after
        // the spawn so that only the runtime and the container hold them.
        let mut create = Command::new(&args.runtime);
        create
            .arg("--root")
            .arg(&args.root)
            .arg("--log")
            .arg(args.dir.join(files::RUNTIME_LOG))
            .args(["--log-format", "json", command]);
        if args.start {
            create.arg("--detach");
        }
        create
            .arg("--bundle")
            .arg(&args.bundle)
            .arg("--pid-file")
            .arg(&pid_path)
            .arg(&args.id)
            .stdin(Stdio::null())
            .stdout(stdout_w)
            .stderr(stderr_w);
        let mut child = create.spawn().map_err(|source| ShimError::Spawn {
            binary: args.runtime.clone(),
            source,
        })?;
        drop(create);
        child.wait().map_err(setup("waiting for the runtime"))?
    };
    if !status.success() {
        let mut stderr_text = String::new();
        // Best effort: what the runtime printed besides its log.
        let _ = (&stderr_r).read_to_string(&mut stderr_text);
        let mut message = files::runtime_log_errors(&args.dir.join(files::RUNTIME_LOG));
        if message.is_empty() {
            message = stderr_text.trim().to_owned();
        }
        return Err(ShimError::CreateFailed {
            binary: args.runtime.clone(),
            command,
            id: args.id.clone(),
            status: status.to_string(),
            message,
        });
    }
    let container_pid = match files::read_pid(&pid_path) {
        Ok(Some(pid)) => pid,
        Ok(None) => {
            return Err(ShimError::Io {
                path: pid_path,
                source: io::Error::new(io::ErrorKind::NotFound, "the runtime wrote no pid file"),
            });
        }
        Err(source) => {
            return Err(ShimError::Io {
                path: pid_path,
                source,
            });
        }
    };
    // Without pidfds (Linux < 5.3) the loop polls for the exit instead.
    let pidfd = sysproc::pidfd_open(container_pid).ok();
    let record_path = args.dir.join(files::SHIM_PID);
    ShimRecord::current()
        .and_then(|record| record.write(&args.dir))
        .map_err(|source| ShimError::Io {
            path: record_path,
            source,
        })?;
    report(container_pid).map_err(setup("reporting the container's pid"))?;

    let status = watch(
        container_pid,
        pidfd.as_ref().map(|fd| fd.as_fd()),
        [stdout_r, stderr_r],
        &mut log,
    )
    .map_err(|source| ShimError::Io {
        path: log_path.clone(),
        source,
    })?;
    let exit = Exit {
        code: status.code(),
        signal: match status {
            WaitStatus::Signaled(signal) => Some(signal),
            WaitStatus::Exited(_) => None,
        },
        finished_at_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    };
    let exit_path = args.dir.join(files::EXIT);
    let json = serde_json::to_vec(&exit).map_err(|e| ShimError::Io {
        path: exit_path.clone(),
        source: io::Error::other(e),
    })?;
    crate::state::write_atomic(&exit_path, &json).map_err(|source| ShimError::Io {
        path: exit_path,
        source,
    })?;
    Ok(exit)
}

/// Tells the agent the container's pid on stdout, then closes stdout (points
/// it at /dev/null): the agent reads to the end of the pipe.
fn report(container_pid: u32) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{container_pid}")?;
    stdout.flush()?;
    let null = File::open("/dev/null")?;
    sysproc::dup_onto(null.as_fd(), libc::STDOUT_FILENO)
}

/// The agent's side of [`report`]: the pid the shim reports, or `None` if
/// its stdout ended without one (it failed; its log says why).
pub async fn read_report(mut stdout: impl tokio::io::AsyncRead + Unpin) -> io::Result<Option<u32>> {
    use tokio::io::AsyncReadExt as _;
    // A pid and a newline; anything longer is not a report.
    let mut line = Vec::with_capacity(16);
    let mut buf = [0u8; 16];
    loop {
        let n = stdout.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        line.extend_from_slice(&buf[..n]);
        if let Some(end) = line.iter().position(|&b| b == b'\n') {
            let text = std::str::from_utf8(&line[..end]).unwrap_or("");
            return match text.parse::<u32>() {
                Ok(pid) if pid > 0 => Ok(Some(pid)),
                _ => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the shim reported {:?}, not a pid",
                        String::from_utf8_lossy(&line[..end])
                    ),
                )),
            };
        }
        if line.len() > 32 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the shim's report is not a pid line",
            ));
        }
    }
}

/// Drains the container's output into `log` and reaps children until the
/// container's process has ended; returns how it ended.
fn watch(
    container_pid: u32,
    pidfd: Option<BorrowedFd<'_>>,
    pipes: [io::PipeReader; 2],
    log: &mut CriLog,
) -> io::Result<WaitStatus> {
    let streams = [Stream::Stdout, Stream::Stderr];
    let mut open = [true, true];
    let mut buf = vec![0u8; 64 * 1024];
    // With a pidfd the exit wakes us; the timeout only reaps stray orphans.
    let timeout_ms = if pidfd.is_some() { 10_000 } else { 250 };
    loop {
        let mut fds: Vec<BorrowedFd<'_>> = Vec::with_capacity(3);
        let mut which = Vec::with_capacity(2);
        for (i, pipe) in pipes.iter().enumerate() {
            if open[i] {
                fds.push(pipe.as_fd());
                which.push(i);
            }
        }
        fds.extend(pidfd);
        sysproc::poll_readable(&fds, timeout_ms)?;
        for &i in &which {
            open[i] = drain_once(&pipes[i], streams[i], &mut buf, log)? != Drained::Closed;
        }
        log.flush()?;
        loop {
            match sysproc::reap_any()? {
                Reaped::Child { pid, status } if pid == container_pid => {
                    // What the container wrote before it ended is still in
                    // the pipes; descendants may hold them open, so read
                    // only what is there now.
                    for i in 0..2 {
                        while open[i]
                            && drain_once(&pipes[i], streams[i], &mut buf, log)? == Drained::Data
                        {
                        }
                    }
                    log.finish(OffsetDateTime::now_utc())?;
                    return Ok(status);
                }
                Reaped::Child { .. } => continue,
                Reaped::NoneReady => break,
                Reaped::NoChildren => {
                    return Err(io::Error::other(format!(
                        "container process {container_pid} is not a child of the shim"
                    )));
                }
            }
        }
    }
}

/// What one non-blocking read from a pipe found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Drained {
    Data,
    Empty,
    Closed,
}

/// One non-blocking read from a pipe into the log.
fn drain_once(
    mut pipe: &io::PipeReader,
    stream: Stream,
    buf: &mut [u8],
    log: &mut CriLog,
) -> io::Result<Drained> {
    match pipe.read(buf) {
        Ok(0) => Ok(Drained::Closed),
        Ok(n) => {
            log.feed(stream, &buf[..n], OffsetDateTime::now_utc())?;
            Ok(Drained::Data)
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            Ok(Drained::Empty)
        }
        Err(e) => Err(e),
    }
}

/// The `shim` subcommand's body for `main`: runs the shim, prints its error
/// to stderr (the agent points that at `<dir>/shim.log`) and returns the
/// process exit code.
pub fn main(args: &ShimArgs) -> i32 {
    match run(args) {
        Ok(_) => 0,
        Err(e) => {
            let _ = writeln!(io::stderr(), "flotilla shim: {e}");
            1
        }
    }
}

/// The arguments of a standby shim, as the agent writes them to its stdin:
/// each of [`ShimArgs::to_args`] followed by a NUL.
pub fn standby_input(args: &ShimArgs) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt as _;
    let mut input = Vec::new();
    for arg in args.to_args() {
        input.extend_from_slice(arg.as_bytes());
        input.push(0);
    }
    input
}

/// Parses what [`standby_input`] wrote.
pub fn parse_standby_input(input: &[u8]) -> Result<ShimArgs, clap::Error> {
    use std::os::unix::ffi::OsStrExt as _;
    #[derive(clap::Parser)]
    struct Standby {
        #[command(flatten)]
        args: ShimArgs,
    }
    let args = input
        .strip_suffix(&[0])
        .unwrap_or(input)
        .split(|b| *b == 0)
        .map(|arg| std::ffi::OsStr::from_bytes(arg).to_owned());
    <Standby as clap::Parser>::try_parse_from(std::iter::once("shim".into()).chain(args))
        .map(|s| s.args)
}

/// The `shim-standby` subcommand's body: a shim the agent started before it
/// had a container for it (so that a start does not wait for a process to
/// be made). It waits for its arguments on stdin; an empty stdin (the
/// agent stopped, or did not need it) ends it quietly. Its stderr goes to
/// the container's `shim.log` once it knows the container.
pub fn standby_main() -> i32 {
    let mut input = Vec::new();
    if io::stdin().read_to_end(&mut input).is_err() || input.is_empty() {
        return 0;
    }
    let args = match parse_standby_input(&input) {
        Ok(args) => args,
        Err(e) => {
            let _ = writeln!(io::stderr(), "flotilla shim: bad standby arguments: {e}");
            return 2;
        }
    };
    match open_shim_log(&args.dir) {
        Ok(log) => {
            let _ = sysproc::dup_onto(log.as_fd(), libc::STDERR_FILENO);
        }
        Err(e) => {
            let _ = writeln!(io::stderr(), "flotilla shim: {}: {e}", args.dir.display());
        }
    }
    main(&args)
}

/// Opens `<dir>/shim.log` for the shim's stderr (appending).
pub fn open_shim_log(dir: &std::path::Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(files::SHIM_LOG))
}

/// Removes a shim directory's control files (not the logs) so a container
/// id can be created again in it.
pub(crate) fn clear_control_files(dir: &std::path::Path) -> io::Result<()> {
    for name in [files::PID, files::SHIM_PID, files::EXIT, files::RUNTIME_LOG] {
        match fs::remove_file(dir.join(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &'static [u8]) -> io::Result<Option<u32>> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(read_report(bytes))
    }

    #[test]
    fn standby_arguments_survive_the_trip_through_stdin() {
        let args = ShimArgs {
            runtime: "/usr/bin/runc".into(),
            root: "/run/flotilla/runtime".into(),
            bundle: "/var/lib/flotilla/containers/a b".into(),
            id: "uid-main-0".into(),
            dir: "/var/lib/flotilla/containers/a b/shim".into(),
            start: true,
            log_max_bytes: 1000,
            log_max_files: 3,
        };
        let input = standby_input(&args);
        assert_eq!(parse_standby_input(&input).expect("parse"), args);
        let created = ShimArgs {
            start: false,
            ..args
        };
        assert_eq!(
            parse_standby_input(&standby_input(&created)).expect("parse"),
            created
        );
        assert!(parse_standby_input(b"--id\0x\0").is_err());
    }

    #[test]
    fn a_report_is_one_pid_line_and_an_end_without_one_is_a_failure() {
        assert_eq!(read(b"4242\n").expect("pid"), Some(4242));
        assert_eq!(read(b"").expect("no report"), None);
        assert_eq!(read(b"12").expect("cut short"), None);
        for bad in [&b"0\n"[..], b"-1\n", b"pid\n", &[b'9'; 40]] {
            let bytes: &'static [u8] = Box::leak(bad.to_vec().into_boxed_slice());
            assert!(read(bytes).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
