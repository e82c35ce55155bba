//! A moto server on 127.0.0.1, speaking the AWS wire protocols (S3, DynamoDB, SQS, Step
//! Functions, CloudFormation, …) for the AWS adapter tests.
//!
//! One server per test process, started on first use on a free port and shared by every
//! test (each test uses its own bucket, table and queue names). It is stopped when the
//! test process ends, however it ends: the server runs under a small Python watchdog that
//! exits when its stdin (a pipe held by this process) closes.
//!
//! moto comes from `.venv/` (installed by `scripts/setup`); without it the tests fail with
//! a message that says to run that script.

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::util::repo_root;

/// The running server.
pub struct Moto {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    pub port: u16,
    _child: Mutex<(Child, ChildStdin)>,
}

/// The region every test uses.
pub const REGION: &str = "us-east-1";

/// The shared server, started on first use.
pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| start().unwrap_or_else(|e| panic!("{e}")))
}

/// Runs moto's server the way `moto_server` does, with two differences: it exits when
/// stdin closes, and it handles one request at a time. DynamoDB applies each conditional
/// write atomically; moto's threaded server does not, so without the lock two racing
/// conditional writes could both succeed here where AWS lets one win.
const WATCHDOG: &str = r#"
import os, sys, threading
port = int(sys.argv[1])
def watch():
    sys.stdin.read()      # returns when the test process closes the pipe (or dies)
    os._exit(0)
threading.Thread(target=watch, daemon=True).start()
os.environ.setdefault("MOTO_PORT", str(port))
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.moto_server.werkzeug_app import MotoRequestHandler
app = DomainDispatcherApplication(create_backend_app)
lock = threading.Lock()
def serialized(environ, start_response):
    with lock:
        return list(app(environ, start_response))
run_simple("127.0.0.1", port, serialized, threaded=True, request_handler=MotoRequestHandler)
"#;

fn start() -> Result<Moto, String> {
    let python = repo_root().join(".venv/bin/python");
    if !python.exists() {
        return Err(format!(
            "moto is not installed: {} is missing; run scripts/setup (it installs moto[server] into .venv/)",
            python.display()
        ));
    }
    let check = Command::new(&python)
        .args(["-c", "import moto.server"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !check.status.success() {
        return Err(format!(
            "moto is not installed in .venv/ ({}); run scripts/setup",
            String::from_utf8_lossy(&check.stderr).trim()
        ));
    }
    let mut last = String::new();
    // A free port can be taken between asking and binding: try a few.
    for _ in 0..3 {
        let port = free_port()?;
        match spawn(&python, port) {
            Ok(m) => return Ok(m),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn free_port() -> Result<u16, String> {
    let l =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port on 127.0.0.1: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}

fn spawn(python: &std::path::Path, port: u16) -> Result<Moto, String> {
    let mut child = Command::new(python)
        .args(["-c", WATCHDOG, &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the moto server: {e}"))?;
    let stdin = child.stdin.take().expect("piped stdin");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() && ready(port) {
            // Drain moto's request log so the pipe never fills.
            std::thread::spawn(move || {
                let mut r = BufReader::new(stderr);
                let mut line = String::new();
                while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    line.clear();
                }
            });
            return Ok(Moto {
                endpoint: format!("http://127.0.0.1:{port}"),
                port,
                _child: Mutex::new((child, stdin)),
            });
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            let _ = stderr.read_to_string(&mut err);
            let hint = if err.contains("Address already in use") {
                format!("port {port} on 127.0.0.1 is taken by another program")
            } else {
                "see its output above".to_string()
            };
            return Err(format!(
                "the moto server exited ({status}) before answering: {hint}\n{}",
                err.lines()
                    .rev()
                    .take(15)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(format!(
                "the moto server did not answer on port {port} within 60 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// moto answers its own reset endpoint once it serves requests.
fn ready(port: u16) -> bool {
    use std::io::Write;
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req =
        format!("GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

/// Environment for a child process (a Lambda binary, the `skein` CLI) to talk to moto
/// through the standard AWS variables.
pub fn env() -> Vec<(&'static str, String)> {
    let m = moto();
    vec![
        ("AWS_ENDPOINT_URL", m.endpoint.clone()),
        ("AWS_REGION", REGION.to_string()),
        ("AWS_DEFAULT_REGION", REGION.to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
        ("AWS_ALLOW_HTTP", "true".to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
    ]
}

/// A name no other test uses: `<prefix>-<pid>-<n>` (lower case, valid for S3 and SQS).
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[test]
fn moto_server_answers() {
    let m = moto();
    assert!(m.endpoint.starts_with("http://127.0.0.1:"));
    assert!(ready(m.port), "moto stopped answering on {}", m.endpoint);
}
