//! Stock `kubectl` against a test cluster: runs it as a process with a
//! replica's kubeconfig (the admin one the replica wrote, or one for a
//! bearer token), and returns what it printed.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::{Value, json};

/// A kubectl bound to one kubeconfig.
#[derive(Debug, Clone)]
pub struct Kubectl {
    kubeconfig: PathBuf,
}

/// What one kubectl run did.
#[derive(Debug)]
pub struct Run {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Run {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Kubectl {
    /// kubectl with the kubeconfig at `path` (as `flotilla-hub server` writes it).
    pub fn new(kubeconfig: &Path) -> Kubectl {
        Kubectl {
            kubeconfig: kubeconfig.to_owned(),
        }
    }

    /// A kubeconfig in `dir` for the same cluster as `admin`, authenticating
    /// with a bearer `token` instead of the admin certificate.
    pub fn with_token(admin: &Path, dir: &Path, user: &str, token: &str) -> Kubectl {
        let text = std::fs::read_to_string(admin).expect("read the admin kubeconfig");
        let mut config: Value = serde_json::from_str(&text).expect("the kubeconfig is JSON");
        config["users"] = json!([{ "name": user, "user": { "token": token } }]);
        config["contexts"][0]["context"]["user"] = json!(user);
        let path = dir.join(format!("{user}.kubeconfig"));
        std::fs::write(&path, serde_json::to_vec_pretty(&config).expect("encode"))
            .expect("write kubeconfig");
        Kubectl::new(&path)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("kubectl");
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--request-timeout=20s")
            .args(args)
            // No cache directory shared between tests: discovery is fetched afresh.
            .env("KUBECACHEDIR", self.kubeconfig.with_extension("cache"))
            .env_remove("KUBECONFIG");
        command
    }

    /// Runs kubectl with `args`, feeding `stdin` if given.
    pub fn run_with_input(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut command = self.command(args);
        command
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("run kubectl (is it installed?)");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write kubectl's stdin");
        }
        child.wait_with_output().expect("wait for kubectl").into()
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_input(args, None)
    }

    /// Runs kubectl and returns its output; panics with its stderr when it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert!(
            run.success,
            "kubectl {} failed:\n{}{}",
            args.join(" "),
            run.stdout,
            run.stderr
        );
        run.stdout
    }

    /// Runs kubectl expecting it to fail; returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert!(
            !run.success,
            "kubectl {} should have failed:\n{}",
            args.join(" "),
            run.stdout
        );
        run.stderr
    }

    /// `kubectl apply -f -` of `manifest`; panics when it fails.
    pub fn apply(&self, manifest: &str, extra: &[&str]) -> String {
        let mut args = vec!["apply", "-f", "-"];
        args.extend_from_slice(extra);
        let run = self.run_with_input(&args, Some(manifest));
        assert!(
            run.success,
            "kubectl apply failed:\n{}{}",
            run.stdout, run.stderr
        );
        run.stdout
    }

    /// `kubectl get ... -o json`, parsed.
    pub fn get_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).expect("kubectl printed JSON")
    }

    /// Starts a long-running kubectl (`get -w`) with its stdout piped.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl")
    }
}
