//! The files a shim leaves in its directory, shared by the shim (writer)
//! and the agent (reader): `pid` (written by the OCI runtime), `shim.pid`,
//! `exit`, `runtime.log`, `shim.log`.

use std::fs;
use std::io;
use std::path::Path;

use super::Exit;
use crate::state::write_atomic_volatile;

/// The container's host pid, written by the runtime's `--pid-file`.
pub const PID: &str = "pid";
/// The shim's pid and start time, written once the container is created.
pub const SHIM_PID: &str = "shim.pid";
/// The container's [`Exit`] as JSON, written when the shim reaped it.
pub const EXIT: &str = "exit";
/// The OCI runtime's own log (`--log`, JSON lines) for the create call.
pub const RUNTIME_LOG: &str = "runtime.log";
/// The shim's own stderr.
pub const SHIM_LOG: &str = "shim.log";
/// The container's stdout and stderr in CRI format (rotated to `.1`, ...).
pub const CONTAINER_LOG: &str = "container.log";

/// Reads a shim's exit file; `None` if there is none yet.
pub fn read_exit(shim_dir: &Path) -> io::Result<Option<Exit>> {
    match fs::read(shim_dir.join(EXIT)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads the pid the runtime wrote; `None` if the file does not exist yet.
pub fn read_pid(path: &Path) -> io::Result<Option<u32>> {
    match fs::read_to_string(path) {
        Ok(text) => text
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|pid| *pid > 0)
            .map(Some)
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, format!("not a pid: {text:?}"))
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Which process the shim is: its pid and its start time in clock ticks
/// after boot (`/proc/<pid>/stat` field 22), so a reused pid is not taken
/// for the shim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShimRecord {
    pub pid: u32,
    pub start_time: u64,
}

impl ShimRecord {
    /// The record of the calling process.
    pub fn current() -> io::Result<Self> {
        let pid = std::process::id();
        let start_time = process_start_time(pid)?
            .ok_or_else(|| io::Error::other("own /proc entry has no start time"))?;
        Ok(ShimRecord { pid, start_time })
    }

    /// Written without fsync: it describes a process, which a power loss
    /// ends anyway (a torn record reads as an error, taken for no shim).
    pub fn write(&self, shim_dir: &Path) -> io::Result<()> {
        write_atomic_volatile(
            &shim_dir.join(SHIM_PID),
            format!("{} {}\n", self.pid, self.start_time).as_bytes(),
        )
    }

    /// The shim's record; `None` if it never wrote one.
    pub fn read(shim_dir: &Path) -> io::Result<Option<Self>> {
        let text = match fs::read_to_string(shim_dir.join(SHIM_PID)) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut fields = text.split_whitespace().map(str::parse::<u64>);
        match (fields.next(), fields.next()) {
            (Some(Ok(pid)), Some(Ok(start_time))) => Ok(Some(ShimRecord {
                pid: u32::try_from(pid)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
                start_time,
            })),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not \"<pid> <start time>\": {text:?}"),
            )),
        }
    }

    /// Whether this shim still runs: the pid exists, is not a zombie and
    /// started at the recorded time.
    pub fn is_alive(&self) -> bool {
        matches!(process_start_time(self.pid), Ok(Some(t)) if t == self.start_time)
    }
}

/// A process's start time from `/proc/<pid>/stat`; `None` if it does not
/// exist or is a zombie (it has ended; only its exit status is left).
pub fn process_start_time(pid: u32) -> io::Result<Option<u64>> {
    let stat = match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(
        parse_stat(&stat)
            .and_then(|(state, start)| (state != 'Z' && state != 'X').then_some(start)),
    )
}

/// The state letter and the start time from a `/proc/<pid>/stat` line. The
/// command name (field 2) may hold spaces and parentheses, so fields are
/// counted after its last `)`.
fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // After the state (field 3) comes field 4; start time is field 22.
    let start = fields.nth(22 - 4)?.parse().ok()?;
    Some((state, start))
}

/// The error-level messages in an OCI runtime's JSON log (`--log-format
/// json`), joined; what runc and crun say when a command fails.
pub fn runtime_log_errors(path: &Path) -> String {
    let Ok(text) = fs::read_to_string(path) else {
        return String::new();
    };
    let mut messages = Vec::new();
    for line in text.lines() {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let level = entry.get("level").and_then(|l| l.as_str()).unwrap_or("");
        if matches!(level, "error" | "fatal" | "panic")
            && let Some(msg) = entry.get("msg").and_then(|m| m.as_str())
        {
            messages.push(msg.to_owned());
        }
    }
    messages.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_a_command_name_with_spaces_and_parens() {
        let line =
            "1234 (a) b (c) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_stat(line), Some(('S', 987654)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn the_own_process_is_alive_and_a_changed_start_time_is_not() {
        let me = ShimRecord::current().expect("own record");
        assert!(me.is_alive());
        let reused = ShimRecord {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!reused.is_alive());
    }

    #[test]
    fn the_shim_record_and_exit_file_round_trip_and_are_absent_before_writing() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(ShimRecord::read(dir.path()).expect("read"), None);
        assert_eq!(read_exit(dir.path()).expect("read"), None);
        let record = ShimRecord {
            pid: 42,
            start_time: 7,
        };
        record.write(dir.path()).expect("write");
        assert_eq!(ShimRecord::read(dir.path()).expect("read"), Some(record));
        let exit = Exit {
            code: 143,
            signal: Some(15),
            finished_at_ms: 1,
        };
        crate::state::write_atomic(
            &dir.path().join(EXIT),
            &serde_json::to_vec(&exit).expect("json"),
        )
        .expect("write");
        assert_eq!(read_exit(dir.path()).expect("read"), Some(exit));
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temp files are left: {names:?}");
    }

    #[test]
    fn runtime_log_errors_keeps_only_error_messages() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("log");
        fs::write(
            &log,
            "{\"level\":\"warning\",\"msg\":\"meh\"}\nnot json\n{\"level\":\"error\",\"msg\":\"no such file\"}\n{\"msg\":\"cgroups in hybrid mode\",\"level\":\"error\"}",
        )
        .expect("write");
        assert_eq!(
            runtime_log_errors(&log),
            "no such file; cgroups in hybrid mode"
        );
        assert_eq!(runtime_log_errors(&dir.path().join("missing")), "");
    }
}
