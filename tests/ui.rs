//! `skein ui`, `/metrics` and `skein report` end to end: the real binary serving a catalog
//! the sample run wrote, a real browser (Debian's chromium through playwright-core) on the
//! page, Prometheus text parsed strictly.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::util::{Workspace, copy_dir, repo_root, text};

fn samples(ws: &Workspace) {
    copy_dir(&repo_root().join("samples"), &ws.path().join("samples"));
}

fn skein(ws: &Workspace, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_skein"));
    c.args(args)
        .current_dir(ws.path())
        .env("SKEIN_CATALOG", ws.path().join(".skein"))
        .env_remove("SKEIN_LOG")
        .env_remove("SKEIN_LOG_FORMAT")
        .env_remove("SKEIN_UI_TOKEN")
        .env_remove("SKEIN_STATES_CRASH_AFTER");
    c
}

/// A child process killed when the test ends, however it ends.
pub(crate) struct Running(pub(crate) Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `skein ui --port 0 …` and the URL it printed.
fn serve(ws: &Workspace, extra: &[&str]) -> (Running, String) {
    let mut args = vec!["ui", "--port", "0", "--quiet"];
    args.extend_from_slice(extra);
    let mut child = skein(ws, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start skein ui");
    let mut line = String::new();
    let stdout = child.stdout.take().unwrap();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = line.trim().to_string();
    if !url.starts_with("http://") {
        let mut err = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut err);
        panic!(
            "skein ui printed {line:?} instead of its URL; stderr: {err}\n(an `unrecognized subcommand` means {} is not this branch's build: another checkout rebuilt the shared target directory meanwhile)",
            env!("CARGO_BIN_EXE_skein")
        );
    }
    (Running(child), url)
}

/// A plain HTTP/1.1 request: (status, body).
pub(crate) fn http(url: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let authority = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let port = authority.rsplit(':').next().unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        unchunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").unwrap();
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
}

/// dataset → (status, rows) from `skein status --json`.
fn catalog(ws: &Workspace) -> BTreeMap<String, (String, u64)> {
    let (_, json) = ws.skein_json(&["status"]);
    json["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_string(),
                (
                    d["status"].as_str().unwrap().to_string(),
                    d["rows"].as_u64().unwrap_or(0),
                ),
            )
        })
        .collect()
}

fn wait_for_status(ws: &Workspace, name: &str, status: &str, run: &mut Child) {
    for _ in 0..1200 {
        if catalog(ws).get(name).map(|s| s.0.as_str()) == Some(status) {
            return;
        }
        if let Ok(Some(exit)) = run.try_wait() {
            panic!(
                "the run ended ({exit}) before {name} became {status}: {:#?}",
                catalog(ws)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{name} never became {status}: {:#?}", catalog(ws));
}

/// Where test artifacts go: `<target>/test-artifacts/`.
fn artifacts() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_skein"));
    let target = exe
        .parent()
        .and_then(Path::parent)
        .expect("the binary is in <target>/<profile>/");
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_browser_sees_the_sample_run_and_approves_the_waiting_dataset() {
    let chromium = Path::new("/usr/bin/chromium");
    let playwright = repo_root().join("node_modules/playwright-core/package.json");
    assert!(
        chromium.exists() && playwright.exists(),
        "the browser test needs /usr/bin/chromium and node_modules/playwright-core: run scripts/setup"
    );
    let ws = Workspace::new();
    samples(&ws);
    // The sample run waits (in its own process) for `invoices` to be approved.
    let mut run = skein(&ws, &["run", "samples", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_status(&ws, "invoices", "awaiting_approval", &mut run);
    let run = Running(run);
    let (_ui, url) = serve(&ws, &[]);
    let shot = artifacts().join("ui-execution.png");
    let out = Command::new("node")
        .arg(repo_root().join("tests/browser/ui.mjs"))
        .arg(&url)
        .arg(&shot)
        .current_dir(repo_root())
        .output()
        .expect("node is on PATH (scripts/setup needs it too)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let got: Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("the browser script said no JSON ({e}): {}", text(&out)));
    assert_eq!(out.status.code(), Some(0), "{got:#}\n{}", text(&out));
    assert_eq!(
        got["tableRows"], 12,
        "every sample dataset in the table: {got:#}"
    );
    assert_eq!(got["statusBefore"], "awaiting_approval", "{got:#}");
    assert_eq!(
        got["rollbackButtons"], 0,
        "no version to go back to: {got:#}"
    );
    assert_eq!(got["filteredRows"], 1, "the status filter: {got:#}");
    assert_eq!(got["waveRows"], 5, "canary and four waves: {got:#}");
    assert_eq!(got["groupRows"], 2, "bulk-eu and finance: {got:#}");
    assert_eq!(got["throughputChart"], 1, "the throughput chart: {got:#}");
    assert!(
        got["graphNodes"].as_u64().unwrap() >= 10,
        "the dataset machine's states: {got:#}"
    );
    assert!(got["graphEdges"].as_u64().unwrap() >= 10, "{got:#}");
    assert_eq!(got["waitingState"], "running", "{got:#}");
    assert_eq!(got["statusAfter"], "completed", "{got:#}");
    assert_eq!(got["datasetVersions"], 1, "v1 published: {got:#}");
    assert_eq!(got["datasetAttempts"], 1, "{got:#}");
    let facts = got["datasetFacts"].as_str().unwrap_or("");
    assert!(
        facts.contains("Format parquet") && !facts.contains("Table version"),
        "the target's format, no Delta table version for Parquet: {got:#}"
    );
    assert_eq!(
        got["datasetUpstream"], "orders",
        "invoices depends on orders: {got:#}"
    );
    assert_eq!(got["datasetExecutions"], 1, "{got:#}");
    assert_eq!(got["waitingStateAfter"], "succeeded", "{got:#}");
    assert_eq!(got["publishState"], "succeeded", "{got:#}");
    assert!(
        got["publishInput"]
            .as_str()
            .is_some_and(|t| t.contains("\"dataset\": \"invoices\"")),
        "the Publish state's input: {got:#}"
    );
    assert!(
        got["publishOutput"]
            .as_str()
            .is_some_and(|t| t.contains("\"version\"")),
        "the Publish state's output: {got:#}"
    );
    // The run execution's Wave links to the dataset executions it started (not one per
    // sample: the canary's are the CanaryWave's).
    assert!(
        got["waveChildren"].as_u64().is_some_and(|n| n >= 1),
        "the Wave's child executions: {got:#}"
    );
    assert!(
        got["childOpened"]
            .as_str()
            .is_some_and(|t| t.starts_with("Execution ")),
        "a child execution opens: {got:#}"
    );
    assert_eq!(got["consoleErrors"], serde_json::json!([]), "{got:#}");
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot at {}",
        shot.display()
    );
    // The run went on to its end, with invoices published by the approval.
    let mut run = run;
    for _ in 0..600 {
        if run.0.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(run.0.try_wait().unwrap().is_some(), "the run ended");
    let c = catalog(&ws);
    assert_eq!(c["invoices"], ("completed".to_string(), 3), "{c:#?}");
}

/// A Prometheus text exposition parsed strictly: every sample belongs to a family
/// declared by `# TYPE` before it, names and labels are well formed, values are numbers.
/// Returns `name{labels}` → value, labels sorted.
fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = BTreeMap::new();
    let ident = |s: &str| {
        !s.is_empty()
            && s.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    for (n, line) in text.lines().enumerate() {
        let at = |what: &str| format!("line {}: {what}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kw, name, tail) = (parts.next().unwrap(), parts.next(), parts.next());
            let name = name.unwrap_or_else(|| panic!("{}", at("a comment without a name")));
            assert!(ident(name), "{}", at("bad metric name"));
            match kw {
                "TYPE" => {
                    let t = tail.unwrap_or("");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t),
                        "{}",
                        at("unknown type")
                    );
                    assert!(
                        types.insert(name.to_string(), t.to_string()).is_none(),
                        "{}",
                        at("family declared twice")
                    );
                }
                "HELP" => assert!(tail.is_some_and(|h| !h.is_empty()), "{}", at("empty help")),
                _ => panic!("{}", at("unknown comment")),
            }
            continue;
        }
        assert!(!line.starts_with('#'), "{}", at("a comment needs `# `"));
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("{}", at("no value")));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("{}", at("value is not a number"))),
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("{}", at("unclosed labels")));
                let mut labels: Vec<(String, String)> = Vec::new();
                let mut rest = body;
                while !rest.is_empty() {
                    let (k, after) = rest
                        .split_once("=\"")
                        .unwrap_or_else(|| panic!("{}", at("label without =\"")));
                    assert!(ident(k) && !k.contains(':'), "{}", at("bad label name"));
                    let mut value = String::new();
                    let mut chars = after.char_indices();
                    let end = loop {
                        match chars.next() {
                            Some((_, '\\')) => match chars.next() {
                                Some((_, 'n')) => value.push('\n'),
                                Some((_, c @ ('\\' | '"'))) => value.push(c),
                                _ => panic!("{}", at("bad escape")),
                            },
                            Some((i, '"')) => break i,
                            Some((_, c)) => value.push(c),
                            None => panic!("{}", at("unterminated label value")),
                        }
                    };
                    labels.push((k.to_string(), value));
                    rest = &after[end + 1..];
                    rest = rest.strip_prefix(',').unwrap_or(rest);
                }
                labels.sort();
                (name, labels)
            }
            None => (series, Vec::new()),
        };
        assert!(ident(name), "{}", at("bad metric name"));
        let family = types.keys().find(|f| {
            name == f.as_str()
                || (types[*f] == "histogram"
                    && ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name == format!("{f}{s}")))
        });
        assert!(family.is_some(), "{}", at("sample before its # TYPE"));
        let key = if labels.is_empty() {
            name.to_string()
        } else {
            let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            format!("{name}{{{}}}", l.join(","))
        };
        assert!(
            samples.insert(key, value).is_none(),
            "{}",
            at("duplicate series")
        );
    }
    samples
}

#[test]
fn metrics_are_prometheus_text_with_the_catalog_numbers() {
    let ws = Workspace::new();
    samples(&ws);
    let (code, _) = ws.skein_json(&["run", "samples", "--auto-approve"]);
    assert_eq!(code, 1, "three sample datasets fail on purpose");
    let (_ui, url) = serve(&ws, &[]);
    let (status, body) = http(&url, "GET", "/metrics", &[]);
    assert_eq!(status, 200, "{body}");
    let m = parse_prometheus(&body);
    let c = catalog(&ws);
    let count = |s: &str| c.values().filter(|v| v.0 == s).count() as f64;
    for status in [
        "completed",
        "failed",
        "rolled_back",
        "awaiting_approval",
        "pending",
    ] {
        assert_eq!(
            m[&format!("skein_datasets{{status=\"{status}\"}}")],
            count(status),
            "{status}: {body}"
        );
    }
    assert_eq!(count("completed"), 9.0, "{c:#?}");
    let rows: u64 = c.values().filter(|v| v.0 == "completed").map(|v| v.1).sum();
    assert_eq!(m["skein_rows_migrated_total"], rows as f64, "{body}");
    assert!(m["skein_bytes_migrated_total"] > 0.0, "{body}");
    // 11 migrate jobs ran (refunds was skipped before its job), each a finished attempt.
    let jobs = m["skein_job_duration_seconds_count"];
    assert_eq!(jobs, 11.0, "{body}");
    assert_eq!(m["skein_job_duration_seconds_bucket{le=\"+Inf\"}"], jobs);
    let mut last = 0.0;
    for le in [
        "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60", "300", "+Inf",
    ] {
        let b = m[&format!("skein_job_duration_seconds_bucket{{le=\"{le}\"}}")];
        assert!(b >= last, "buckets are cumulative: {body}");
        last = b;
    }
    assert!(m["skein_job_duration_seconds_sum"] > 0.0);
    for g in ["bulk-eu", "finance"] {
        assert_eq!(
            m[&format!("skein_queue_depth{{group=\"{g}\"}}")],
            0.0,
            "{body}"
        );
    }
    assert_eq!(m["skein_runs{status=\"failed\"}"], 1.0, "{body}");
}

#[test]
fn the_dashboard_api_answers_and_guards_its_actions() {
    let ws = Workspace::new();
    samples(&ws);
    let (_, json) = ws.skein_json(&["run", "samples", "--auto-approve"]);
    let run = json["runId"].as_str().unwrap().to_string();
    let (_ui, url) = serve(&ws, &[]);
    let (status, body) = http(&url, "GET", &format!("/api/runs/{run}"), &[]);
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["total"], 12);
    assert_eq!(v["finished"], 12);
    assert_eq!(v["percent"], 100.0);
    let succeeded: u64 = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["succeeded"].as_u64().unwrap())
        .sum();
    assert_eq!(succeeded, 9, "{v:#}");
    let rows: u64 = catalog(&ws)
        .values()
        .filter(|d| d.0 == "completed")
        .map(|d| d.1)
        .sum();
    assert_eq!(
        v["throughput"]["rows"], rows,
        "rows published by the run: {v:#}"
    );
    let (status, body) = http(&url, "GET", &format!("/api/executions/{run}-payments"), &[]);
    assert_eq!(status, 200, "{body}");
    let e: Value = serde_json::from_str(&body).unwrap();
    let state = |name: &str| {
        e["graph"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .unwrap_or_else(|| panic!("no node {name}"))["status"]
            .clone()
    };
    assert_eq!(state("Migrate"), "caught", "verification failed, caught");
    assert_eq!(state("Rollback"), "succeeded");
    assert_eq!(state("MigrationFailed"), "failed");
    assert_eq!(state("Publish"), "not_run");
    // A dataset's page says how it is published: the sample suppliers is a Delta table
    // at its first commit, products plain Parquet.
    let (status, body) = http(&url, "GET", "/api/datasets/suppliers", &[]);
    assert_eq!(status, 200, "{body}");
    let d: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(d["target"]["format"], "delta", "{d:#}");
    assert_eq!(d["target"]["tableVersion"], 0, "{d:#}");
    assert_eq!(d["target"]["glue"], Value::Null, "{d:#}");
    assert_eq!(
        d["record"]["name"], "suppliers",
        "existing fields stay: {d:#}"
    );
    let (_, body) = http(&url, "GET", "/api/datasets/products", &[]);
    let d: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(d["target"]["format"], "parquet", "{d:#}");
    assert_eq!(d["target"]["tableVersion"], Value::Null, "{d:#}");
    // and so does the Backstage export of the same catalog
    let (code, json) = ws.skein_json(&["catalog", "export", "out"]);
    assert_eq!(code, 0, "{json:#}");
    let yaml = std::fs::read_to_string(ws.path().join("out/catalog-info.yaml")).unwrap();
    let suppliers = yaml
        .split("\n---")
        .find(|e| e.contains("name: suppliers"))
        .unwrap_or_else(|| panic!("suppliers in {yaml}"));
    assert!(
        suppliers.contains("skein.dev/target-format: delta"),
        "{suppliers}"
    );
    assert!(
        suppliers.contains("skein.dev/table-version: '0'"),
        "{suppliers}"
    );
    // Unknown things are 404 with a message; actions need the page's header.
    let (status, body) = http(&url, "GET", "/api/runs/run-nope", &[]);
    assert_eq!(status, 404);
    assert!(body.contains("run-nope"), "{body}");
    let (status, _) = http(&url, "POST", "/api/datasets/products/rollback", &[]);
    assert_eq!(status, 403, "a cross-site form cannot act");
    let (status, body) = http(
        &url,
        "POST",
        "/api/datasets/products/approve",
        &[("x-skein-ui", "1")],
    );
    assert_eq!(status, 409, "nothing waits: {body}");
    assert!(body.contains("not waiting for approval"), "{body}");
    // Rolling back a dataset with only one version is refused and changes nothing.
    let (status, body) = http(
        &url,
        "POST",
        "/api/datasets/products/rollback",
        &[("x-skein-ui", "1")],
    );
    assert_eq!(status, 409, "{body}");
    assert_eq!(catalog(&ws)["products"].0, "completed");
    // A dataset with two versions rolls back to the first (the use case `skein rollback` runs).
    let stores = ws.path().join("samples/data/stores.ndjson");
    let mut data = std::fs::read_to_string(&stores).unwrap();
    data.push_str("{\"store_id\": 3, \"city\": \"Porto\", \"opened\": \"2024-02-29\"}\n");
    std::fs::write(&stores, data).unwrap();
    let out = ws.skein(&["migrate", "samples/stores.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(catalog(&ws)["stores"], ("completed".to_string(), 3));
    let (status, body) = http(
        &url,
        "POST",
        "/api/datasets/stores/rollback",
        &[("x-skein-ui", "1")],
    );
    assert_eq!(status, 200, "{body}");
    let r: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(r["outcome"], "rolled_back", "{r:#}");
    assert_eq!(r["version"], 1, "{r:#}");
    assert_eq!(
        catalog(&ws)["stores"],
        ("rolled_back".to_string(), 2),
        "v1 (two rows) is current again"
    );
    // DNS rebinding: a loopback server answers loopback host names only.
    let port = url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let mut s = TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).unwrap();
    s.write_all(
        b"GET /api/datasets HTTP/1.1\r\nHost: evil.example:80\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 403"), "{raw}");
}

#[test]
fn a_non_loopback_bind_needs_a_token() {
    let ws = Workspace::new();
    let out = skein(&ws, &["ui", "--bind", "0.0.0.0", "--port", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a loopback address") && err.contains("--token"),
        "{err}"
    );
    let (_ui, url) = serve(&ws, &["--bind", "0.0.0.0", "--token", "s3cret"]);
    let (status, _) = http(&url, "GET", "/api/datasets", &[]);
    assert_eq!(status, 401, "no token");
    let (status, _) = http(
        &url,
        "GET",
        "/api/datasets",
        &[("Authorization", "Bearer nope")],
    );
    assert_eq!(status, 401, "wrong token");
    let (status, body) = http(
        &url,
        "GET",
        "/api/datasets",
        &[("Authorization", "Bearer s3cret")],
    );
    assert_eq!(status, 200, "{body}");
    let (status, _) = http(&url, "GET", "/metrics?token=s3cret", &[]);
    assert_eq!(status, 200);
}

#[test]
fn the_html_report_is_self_contained_and_names_the_failures() {
    let ws = Workspace::new();
    samples(&ws);
    let (_, json) = ws.skein_json(&["run", "samples", "--auto-approve"]);
    let run = json["runId"].as_str().unwrap().to_string();
    let file = ws.path().join("report.html");
    let out = ws.skein(&["report", &run, "--html", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let html = std::fs::read_to_string(&file).unwrap();
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains(&run));
    for name in [
        "products",
        "events",
        "customers",
        "stores",
        "suppliers",
        "tickets",
        "orders",
        "addresses",
        "inventory",
        "invoices",
        "payments",
        "refunds",
    ] {
        assert!(
            html.contains(&format!("<td>{name}</td>")),
            "{name} in the table"
        );
    }
    assert!(html.contains("id=\"fail-tickets\""), "tickets failed");
    assert!(html.contains("urgent!"), "with its error");
    assert!(
        html.contains("notNull(method)"),
        "payments' verification failure"
    );
    assert!(html.contains("passed (6 checks)"), "invoices' verification");
    assert!(
        html.contains("<svg") && html.contains("<polyline"),
        "the chart"
    );
    assert!(
        !html.contains("<script") && !html.contains("src=") && !html.contains("href="),
        "self-contained"
    );
    let copy = artifacts().join("report.html");
    std::fs::write(&copy, &html).unwrap();
    let out = ws.skein(&["report", "run-nope", "--html", "x.html"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`run-nope` is not in the catalog"));
}

#[test]
fn json_logs_carry_the_run_and_dataset_ids() {
    let ws = Workspace::new();
    samples(&ws);
    let out = skein(&ws, &["run", "samples", "--auto-approve", "--json"])
        .env("SKEIN_LOG_FORMAT", "json")
        .env("SKEIN_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let jobs: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "migrate job finished")
        .collect();
    assert_eq!(jobs.len(), 11, "one line per migrate job: {stderr}");
    for j in &jobs {
        assert!(j["run_id"].as_str().unwrap().starts_with("run-"), "{j}");
        assert!(!j["dataset"].as_str().unwrap().is_empty(), "{j}");
    }
    assert!(
        lines.iter().any(|l| l["message"] == "task succeeded"
            && l["dataset"] == "invoices"
            && l["state"] == "Publish"),
        "{stderr}"
    );
}

// Issue 19: the execution graph draws no edge through a box. Every segment of every edge
// of both state machines is sampled; no sample may fall inside a state's box other than
// the edge's own two ends (containers, drawn around their states, are left out).
#[test]
fn no_edge_of_the_state_machines_crosses_a_box() {
    for file in ["dataset-migration.asl.json", "migration-run.asl.json"] {
        let text = std::fs::read_to_string(repo_root().join("state-machines").join(file)).unwrap();
        let definition: Value = serde_json::from_str(&text).unwrap();
        let graph = skein_ui::graph::layout(
            &definition,
            &std::collections::HashMap::new(),
            skein_states::status::ExecutionStatus::Running,
        );
        assert!(graph.edges.len() > 5, "{file}: edges laid out");
        for e in &graph.edges {
            for w in e.points.windows(2) {
                let ((x0, y0), (x1, y1)) = (w[0], w[1]);
                for i in 0..=40 {
                    let t = f64::from(i) / 40.0;
                    let (x, y) = (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t);
                    for n in graph.nodes.iter().filter(|n| !n.container) {
                        if n.name == e.from || n.name == e.to {
                            continue;
                        }
                        let inside = x > n.x + 1.0
                            && x < n.x + n.w - 1.0
                            && y > n.y + 1.0
                            && y < n.y + n.h - 1.0;
                        assert!(
                            !inside,
                            "{file}: edge {} → {} ({}) crosses the box of {} at ({x:.0}, {y:.0})",
                            e.from, e.to, e.kind, n.name
                        );
                    }
                }
            }
        }
    }
}

// Issue 19: rows per second leave out the time the run only waited for a person. While
// `invoices` waits for approval (and every other sample has ended), the run page's
// throughput counts that time as waiting, and the rates are over the rest.
#[test]
fn rates_leave_out_the_time_spent_waiting_for_approval() {
    let ws = Workspace::new();
    samples(&ws);
    let mut run = skein(&ws, &["run", "samples", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_status(&ws, "invoices", "awaiting_approval", &mut run);
    let run = Running(run);
    // Every other dataset of the samples ends quickly: then only the approval is left.
    std::thread::sleep(Duration::from_secs(3));
    let (_ui, url) = serve(&ws, &[]);
    let (_, runs) = http(&url, "GET", "/api/runs", &[]);
    let runs: Value = serde_json::from_str(&runs).unwrap();
    let id = runs["runs"][0]["runId"].as_str().unwrap().to_string();
    let (code, body) = http(&url, "GET", &format!("/api/runs/{id}"), &[]);
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let t = &v["throughput"];
    let (elapsed, waiting) = (
        t["elapsedSeconds"].as_f64().unwrap(),
        t["waitingSeconds"].as_f64().unwrap(),
    );
    assert!(waiting >= 2.0, "three seconds of only waiting: {t:#}");
    assert!(waiting < elapsed, "{t:#}");
    let rows = t["rows"].as_f64().unwrap();
    let rate = t["rowsPerSecond"].as_f64().unwrap();
    assert!(
        (rate - rows / (elapsed - waiting)).abs() < 0.01 * rate.max(1.0),
        "rows per second over the active time: {t:#}"
    );
    drop(run);
}

// Issue 19: a Step Functions history read for `skein ui --stack` puts each event in its
// Map iteration's or Parallel branch's frame, as the engine's own history does.
/// Two Map iterations interleaved, as an inline Map's are in AWS's history, and a
/// Parallel inside the first: each iteration's and branch's states land in their own
/// frame, the closing events back in the frame around them.
#[test]
fn interleaved_iterations_and_branches_get_their_own_frames() {
    let history = [
        (1, 0, "ExecutionStarted"),
        (2, 1, "MapStateEntered"),
        (3, 2, "MapStateStarted"),
        (4, 3, "MapIterationStarted"),
        (5, 3, "MapIterationStarted"),
        (6, 4, "PassStateEntered"),
        (7, 5, "PassStateEntered"),
        (8, 7, "PassStateExited"),
        (9, 6, "PassStateExited"),
        (10, 9, "ParallelStateEntered"),
        (11, 10, "ParallelStateStarted"),
        (12, 11, "PassStateEntered"),
        (13, 11, "PassStateEntered"),
        (14, 12, "PassStateExited"),
        (15, 13, "PassStateExited"),
        (16, 15, "ParallelStateSucceeded"),
        (17, 16, "ParallelStateExited"),
        (18, 8, "MapIterationSucceeded"),
        (19, 17, "MapIterationSucceeded"),
        (20, 19, "MapStateSucceeded"),
        (21, 20, "MapStateExited"),
    ];
    let got = skein_ui::executions::frames(&history);
    let want = [
        "0",
        "0",
        "0",
        "0",
        "0",
        "0/4:6",
        "0/5:7",
        "0/5:7",
        "0/4:6",
        "0/4:6",
        "0/4:6",
        "0/4:6/11:12",
        "0/4:6/11:13",
        "0/4:6/11:12",
        "0/4:6/11:13",
        "0/4:6",
        "0/4:6",
        "0",
        "0",
        "0",
        "0",
    ];
    assert_eq!(got, want);
}
