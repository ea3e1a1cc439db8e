//! A private OCI registry for tests: Debian's `docker-registry` (distribution
//! 2.8) on a free loopback port, with its own storage directory and config,
//! optionally behind htpasswd basic auth. Killed when dropped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tempfile::TempDir;

/// The user and password of a registry started with `htpasswd: true`.
pub const USER: &str = "testuser";
pub const PASSWORD: &str = "testpassword";
/// bcrypt of [`PASSWORD`] (from oci-client's own tests).
const HTPASSWD: &str = "testuser:$2y$05$8/q2bfRcX74EuxGf0qOcSuhWDQJXrgWiy6Fi73/JM2tKC66qSrLve\n";

/// The registry binary: `$FLOTILLA_REGISTRY_BIN` or Debian's.
pub fn registry_binary() -> PathBuf {
    std::env::var_os("FLOTILLA_REGISTRY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/docker-registry"))
}

/// How to start a registry.
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// Require HTTP basic auth as [`USER`]/[`PASSWORD`].
    pub htpasswd: bool,
    /// Listen on this IP (default 127.0.0.1): one that devices in network
    /// namespaces reach.
    pub ip: Option<std::net::Ipv4Addr>,
}

/// A running registry.
#[derive(Debug)]
pub struct Registry {
    child: Child,
    ip: std::net::Ipv4Addr,
    port: u16,
    _dir: TempDir,
}

impl Registry {
    /// Starts a registry and waits until `/v2/` answers.
    pub fn start(options: RegistryOptions) -> anyhow::Result<Registry> {
        let binary = registry_binary();
        if !binary.exists() {
            bail!(
                "{} is missing: run scripts/setup.sh (apt-get install docker-registry)",
                binary.display()
            );
        }
        let mut last_error = None;
        // The free port may be taken between probing and binding: retry.
        for _ in 0..3 {
            match Self::try_start(&binary, &options) {
                Ok(r) => return Ok(r),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.expect("three attempts"))
    }

    fn try_start(binary: &Path, options: &RegistryOptions) -> anyhow::Result<Registry> {
        let dir = tempfile::Builder::new()
            .prefix("flotilla-registry-")
            .tempdir()?;
        let ip = options.ip.unwrap_or(std::net::Ipv4Addr::LOCALHOST);
        let port = TcpListener::bind((ip, 0))?.local_addr()?.port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
             delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\n\
             http:\n  addr: {ip}:{port}\n",
            dir.path().join("data").display()
        );
        if options.htpasswd {
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, HTPASSWD)?;
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: flotilla-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config)?;
        let log = std::fs::File::create(dir.path().join("registry.log"))?;
        let child = Command::new(binary)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut registry = Registry {
            child,
            ip,
            port,
            _dir: dir,
        };
        registry.wait_ready()?;
        Ok(registry)
    }

    /// `<ip>:<port>`, as image references and allow lists spell it.
    pub fn host(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait()? {
                let log = std::fs::read_to_string(self._dir.path().join("registry.log"))
                    .unwrap_or_default();
                bail!("the registry exited with {status}: {log}");
            }
            if let Ok(status) = v2_status(self.ip, self.port)
                && (status == 200 || status == 401)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the registry on port {} did not answer /v2/ in 15 s",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on right now.
pub(crate) fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The HTTP status of `GET /v2/`.
fn v2_status(ip: std::net::Ipv4Addr, port: u16) -> anyhow::Result<u16> {
    let mut s = TcpStream::connect((ip, port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head)?;
    let text = std::str::from_utf8(&head)?;
    Ok(text.get(9..12).context("short status line")?.parse()?)
}
