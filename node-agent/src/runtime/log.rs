//! Container logs in the CRI format kubelet and `kubectl logs` read:
//! `<RFC 3339 nano time> <stdout|stderr> <F|P> <text>` per line, where `P`
//! marks a piece of a line longer than [`MAX_LINE`] and `F` its last piece or
//! a whole line. The file is capped: when a record would take it over
//! [`LogLimits::max_bytes`] it is renamed to `.1` (`.1` to `.2`, ...) and a
//! new one started, keeping at most [`LogLimits::max_files`] files.
//!
//! Writes are buffered and flushed by the caller once per batch (one
//! `write(2)` per wake-up, no fsync): logs are worth little next to flash
//! wear, and a crash loses at most the last batch.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write as _};
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The longest line written as one record; longer lines are split.
pub const MAX_LINE: usize = 16 * 1024;

/// How much log a container may keep on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogLimits {
    /// Size at which the current file is rotated (at least one record is
    /// always written to a fresh file, so a file may exceed this by one
    /// record of at most [`MAX_LINE`] plus its prefix).
    pub max_bytes: u64,
    /// Files kept, the current one included (at least 1; 1 truncates).
    pub max_files: u32,
}

impl Default for LogLimits {
    /// 2 MiB in 2 files: small enough for a device's flash.
    fn default() -> Self {
        LogLimits {
            max_bytes: 2 * 1024 * 1024,
            max_files: 2,
        }
    }
}

/// Which of the container's output streams a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The rotating CRI log file of one container, with the unfinished line of
/// each stream.
#[derive(Debug)]
pub struct CriLog {
    path: PathBuf,
    limits: LogLimits,
    file: BufWriter<File>,
    size: u64,
    pending: [Vec<u8>; 2],
}

impl CriLog {
    /// Opens (appends to) the log at `path`.
    pub fn open(path: &Path, limits: LogLimits) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(CriLog {
            path: path.to_owned(),
            limits: LogLimits {
                max_bytes: limits.max_bytes.max(1),
                max_files: limits.max_files.max(1),
            },
            file: BufWriter::with_capacity(64 * 1024, file),
            size,
            pending: [Vec::new(), Vec::new()],
        })
    }

    /// Takes bytes the container wrote to `stream`: whole lines become `F`
    /// records, pieces of overlong lines `P` records, and the rest waits for
    /// its newline.
    pub fn feed(&mut self, stream: Stream, mut data: &[u8], now: OffsetDateTime) -> io::Result<()> {
        let index = stream as usize;
        while !data.is_empty() {
            match data.iter().position(|b| *b == b'\n') {
                Some(newline) => {
                    let mut line = std::mem::take(&mut self.pending[index]);
                    line.extend_from_slice(&data[..newline]);
                    data = &data[newline + 1..];
                    for (i, piece) in line.chunks(MAX_LINE).enumerate() {
                        let last = (i + 1) * MAX_LINE >= line.len();
                        self.record(stream, !last, piece, now)?;
                    }
                    if line.is_empty() {
                        self.record(stream, false, b"", now)?;
                    }
                }
                None => {
                    self.pending[index].extend_from_slice(data);
                    data = &[];
                }
            }
            while self.pending[index].len() >= MAX_LINE {
                let piece: Vec<u8> = self.pending[index].drain(..MAX_LINE).collect();
                self.record(stream, true, &piece, now)?;
            }
        }
        Ok(())
    }

    /// Writes out unfinished lines (as `F` records: the stream ended) and
    /// flushes; for when the container has exited.
    pub fn finish(&mut self, now: OffsetDateTime) -> io::Result<()> {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let line = std::mem::take(&mut self.pending[stream as usize]);
            if !line.is_empty() {
                self.record(stream, false, &line, now)?;
            }
        }
        self.flush()
    }

    /// Hands the buffered records to the kernel (no fsync).
    pub fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }

    fn record(
        &mut self,
        stream: Stream,
        partial: bool,
        text: &[u8],
        now: OffsetDateTime,
    ) -> io::Result<()> {
        let time = now
            .format(&Rfc3339)
            .map_err(|e| io::Error::other(format!("formatting the log time: {e}")))?;
        let prefix = format!(
            "{time} {} {} ",
            stream.name(),
            if partial { 'P' } else { 'F' }
        );
        let len = (prefix.len() + text.len() + 1) as u64;
        if self.size > 0 && self.size + len > self.limits.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(prefix.as_bytes())?;
        self.file.write_all(text)?;
        self.file.write_all(b"\n")?;
        self.size += len;
        Ok(())
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.limits.max_files > 1 {
            for n in (1..self.limits.max_files - 1).rev() {
                match fs::rename(self.rotated(n), self.rotated(n + 1)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            fs::rename(&self.path, self.rotated(1))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.path)?;
        self.file = BufWriter::with_capacity(64 * 1024, file);
        self.size = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(nanos: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_000_000_000 + i128::from(nanos))
            .expect("time")
    }

    fn read(path: &Path) -> String {
        fs::read_to_string(path).expect("read log")
    }

    #[test]
    fn whole_lines_become_f_records_and_a_split_line_waits_for_its_newline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("container.log");
        let mut log = CriLog::open(&path, LogLimits::default()).expect("open");
        log.feed(Stream::Stdout, b"hello\nwor", at(5))
            .expect("feed");
        log.feed(Stream::Stderr, b"oops\n\n", at(6)).expect("feed");
        log.feed(Stream::Stdout, b"ld\n", at(7)).expect("feed");
        log.flush().expect("flush");
        assert_eq!(
            read(&path),
            "2023-11-14T22:13:20.000000005Z stdout F hello\n\
             2023-11-14T22:13:20.000000006Z stderr F oops\n\
             2023-11-14T22:13:20.000000006Z stderr F \n\
             2023-11-14T22:13:20.000000007Z stdout F world\n"
        );
    }

    #[test]
    fn an_overlong_line_is_split_into_p_records_ending_with_f() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("container.log");
        let mut log = CriLog::open(&path, LogLimits::default()).expect("open");
        let mut line = vec![b'x'; MAX_LINE * 2 + 10];
        line.push(b'\n');
        log.feed(Stream::Stdout, &line, at(0)).expect("feed");
        log.flush().expect("flush");
        let tags: Vec<(String, usize)> = read(&path)
            .lines()
            .map(|l| {
                let fields: Vec<&str> = l.splitn(4, ' ').collect();
                (fields[2].to_owned(), fields[3].len())
            })
            .collect();
        assert_eq!(
            tags,
            vec![
                ("P".into(), MAX_LINE),
                ("P".into(), MAX_LINE),
                ("F".into(), 10)
            ]
        );
    }

    #[test]
    fn finish_writes_an_unterminated_last_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("container.log");
        let mut log = CriLog::open(&path, LogLimits::default()).expect("open");
        log.feed(Stream::Stderr, b"no newline", at(0))
            .expect("feed");
        log.finish(at(1)).expect("finish");
        assert!(
            read(&path).ends_with(" stderr F no newline\n"),
            "{}",
            read(&path)
        );
    }

    #[test]
    fn rotation_caps_every_file_and_keeps_only_max_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("container.log");
        let limits = LogLimits {
            max_bytes: 1000,
            max_files: 3,
        };
        let mut log = CriLog::open(&path, limits).expect("open");
        for i in 0..200 {
            log.feed(Stream::Stdout, format!("line {i:04}\n").as_bytes(), at(i))
                .expect("feed");
        }
        log.flush().expect("flush");
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["container.log", "container.log.1", "container.log.2"]
        );
        for name in &names {
            let size = fs::metadata(dir.path().join(name)).expect("stat").len();
            assert!(size <= 1000, "{name} is {size} bytes");
        }
        assert!(read(&path).ends_with("stdout F line 0199\n"));
        let older = read(&dir.path().join("container.log.1"));
        let newer = read(&path);
        assert!(
            older.lines().last() < newer.lines().next(),
            "order across files"
        );
    }

    #[test]
    fn one_file_means_truncating_on_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("container.log");
        let limits = LogLimits {
            max_bytes: 200,
            max_files: 1,
        };
        let mut log = CriLog::open(&path, limits).expect("open");
        for i in 0..50 {
            log.feed(Stream::Stdout, format!("line {i}\n").as_bytes(), at(i))
                .expect("feed");
        }
        log.flush().expect("flush");
        assert!(fs::metadata(&path).expect("stat").len() <= 200);
        assert_eq!(fs::read_dir(dir.path()).expect("ls").count(), 1);
    }

    #[test]
    fn reopening_appends_and_counts_the_existing_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("container.log");
        let limits = LogLimits {
            max_bytes: 100,
            max_files: 2,
        };
        fs::write(&path, vec![b'a'; 90]).expect("write");
        let mut log = CriLog::open(&path, limits).expect("open");
        log.feed(Stream::Stdout, b"next\n", at(0)).expect("feed");
        log.flush().expect("flush");
        assert_eq!(
            fs::metadata(dir.path().join("container.log.1"))
                .expect("stat")
                .len(),
            90
        );
    }
}
