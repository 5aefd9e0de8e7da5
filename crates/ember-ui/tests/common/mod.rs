//! Helpers of the UI tests: a job with the UI on the manual clock, a plain HTTP client, the
//! headless browser.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use ember::clock::Stopwatch;
use ember::prelude::*;
use serde_json::Value;

pub fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

/// A context on the manual clock with the UI on a free port, plus `extra` settings.
pub fn context(master: &str, extra: &[(&str, &str)]) -> StreamingContext {
    logs();
    let mut conf = Conf::new().master(master).manual_clock(true).app_name("ui-test").set("ui.port", "0");
    for (k, v) in extra {
        conf = conf.set(*k, *v);
    }
    StreamingContext::new(conf, Duration::from_secs(1)).unwrap()
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

fn dechunk(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..end]).unwrap_or("0").trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = end + 2;
        out.extend_from_slice(&rest[start..(start + size).min(rest.len())]);
        rest = &rest[(start + size + 2).min(rest.len())..];
    }
    out
}

/// One HTTP/1.1 request with `Connection: close`.
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("cannot reach the UI at {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n{extra}\r\n")
        .unwrap();
    // Up to the end of the body: its length when given (some servers keep the connection
    // open anyway), else the end of the stream.
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = s.read(&mut buf).unwrap();
        raw.extend_from_slice(&buf[..n]);
        if n == 0 {
            break;
        }
        if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:").and_then(|v| v.trim().parse::<usize>().ok()));
            if length.is_some_and(|len| raw.len() >= split + 4 + len) {
                break;
            }
        }
    }
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP response");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status");
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Response { status, headers: head, body: String::from_utf8_lossy(&body).into_owned() }
}

pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[])
}

/// Waits (up to 30 s) until `done()`; the UI learns of batches on the listener bus, just after
/// the job completed them.
pub fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let watch = Stopwatch::start();
    while !done() {
        assert!(watch.elapsed() < Duration::from_secs(30), "not within 30 s: {what}");
        ember::clock::real_sleep(Duration::from_millis(10));
    }
}

/// The application id the UI serves.
pub fn app_id(addr: SocketAddr) -> String {
    get(addr, "/api/v1/applications").json()[0]["id"].as_str().unwrap().to_owned()
}

/// Headless Chromium (Debian's `chromium`, which `scripts/test.sh` installs).
pub fn chromium() -> String {
    let bin = std::env::var("EMBER_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        std::path::Path::new(&bin).exists(),
        "no Chromium at {bin}: run `scripts/test.sh` (it installs Debian's `chromium`), or set EMBER_CHROMIUM"
    );
    bin
}

/// Headless Chromium on a fresh profile; the flags keep it off the network (without them it
/// tries services outside) and let it run as root.
fn chromium_command(profile: &tempfile::TempDir) -> Command {
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
    ]);
    cmd.arg(format!("--user-data-dir={}", profile.path().display()));
    cmd
}

fn browser(args: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = chromium_command(&profile);
    cmd.args(args);
    let out = cmd.output().expect("run chromium");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The DOM of `url` after its scripts ran.
pub fn dom(url: &str) -> String {
    let dom = browser(&["--dump-dom".to_owned(), url.to_owned()]);
    assert!(dom.contains("</html>"), "no page from {url}: {dom}");
    dom
}

/// Saves a screenshot of `url` as `target/ui-screenshots/<name>.png` (a test artefact).
pub fn screenshot(url: &str, name: &str, height: u32) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.png"));
    browser(&[format!("--screenshot={}", path.display()), format!("--window-size=1280,{height}"), url.to_owned()]);
    assert!(std::fs::metadata(&path).map(|m| m.len() > 1000).unwrap_or(false), "no screenshot at {}", path.display());
    path
}

/// The attribute `attr` of every element whose opening tag contains `marker`.
pub fn attrs(html: &str, marker: &str, attr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find(marker) {
        let tag_start = rest[..i].rfind('<').unwrap_or(0);
        let tag_end = i + rest[i..].find('>').unwrap_or(rest.len() - i);
        let tag = &rest[tag_start..tag_end];
        let key = format!("{attr}=\"");
        if let Some(a) = tag.find(&key) {
            let v = &tag[a + key.len()..];
            out.push(v[..v.find('"').unwrap_or(v.len())].to_owned());
        }
        rest = &rest[tag_end.min(rest.len())..];
        if rest.is_empty() {
            break;
        }
    }
    out
}

/// The element with `id="<id>"` and everything up to its closing `</tag>`.
pub fn element<'a>(html: &'a str, tag: &str, id: &str) -> &'a str {
    let start = html.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in the page"));
    let end = html[start..].find(&format!("</{tag}>")).map_or(html.len(), |e| start + e);
    &html[start..end]
}

/// A headless Chromium page driven over the DevTools protocol, to watch a page change without
/// a reload.
pub struct LivePage {
    child: std::process::Child,
    ws: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl LivePage {
    /// Opens `url` in a new headless Chromium.
    pub fn open(url: &str) -> LivePage {
        let profile = tempfile::tempdir().unwrap();
        let child = chromium_command(&profile)
            .arg("--remote-debugging-port=0")
            .arg(url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run chromium");
        // Chromium writes the port it chose to DevToolsActivePort.
        let port_file = profile.path().join("DevToolsActivePort");
        let mut port = None;
        eventually("Chromium's DevTools port", || {
            port = std::fs::read_to_string(&port_file).ok().and_then(|s| s.lines().next()?.trim().parse::<u16>().ok());
            port.is_some()
        });
        let addr: SocketAddr = format!("127.0.0.1:{}", port.unwrap()).parse().unwrap();
        let mut ws_url = None;
        eventually("the page's DevTools target", || {
            let list = get(addr, "/json/list").json();
            ws_url = list.as_array().and_then(|l| {
                l.iter()
                    .find(|t| t["type"] == "page")
                    .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(String::from))
            });
            ws_url.is_some()
        });
        let (ws, _) = tungstenite::connect(ws_url.unwrap()).expect("connect to the page");
        if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        }
        LivePage { child, ws, next_id: 1, _profile: profile }
    }

    /// Evaluates `expression` in the page and returns its value.
    pub fn eval(&mut self, expression: &str) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let msg = serde_json::json!({"id": id, "method": "Runtime.evaluate",
            "params": {"expression": expression, "returnByValue": true}});
        self.ws.send(tungstenite::Message::text(msg.to_string())).unwrap();
        loop {
            let m = self.ws.read().expect("a DevTools reply");
            let Ok(text) = m.to_text() else { continue };
            let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            if v["id"] == id {
                return v["result"]["result"]["value"].clone();
            }
        }
    }

    /// Waits (up to 30 s) until `expression` is true in the page.
    pub fn wait_for(&mut self, what: &str, expression: &str) {
        let watch = Stopwatch::start();
        while self.eval(expression) != Value::Bool(true) {
            assert!(watch.elapsed() < Duration::from_secs(30), "not within 30 s in the browser: {what}");
            ember::clock::real_sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for LivePage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
