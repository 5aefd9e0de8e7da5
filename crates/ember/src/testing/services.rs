//! Test helpers for storages and the services tests start (moto, private servers).

use std::time::Duration;

/// Checks the promises of a [`Storage`](crate::storage::Storage) on an empty root: whole
/// replacement, create-only writes, one-level sorted listings, ranges, directory renames and
/// recursive deletes. Every storage implementation runs it.
///
/// # Panics
/// When a promise is broken (a test helper).
pub fn check_storage(s: std::sync::Arc<dyn crate::storage::Storage>) {
    use std::io::Read;
    let url = s.url();
    let ok = |r: crate::Result<()>| r.unwrap_or_else(|e| panic!("{url}: {e}"));
    ok(s.put("d/one", b"1"));
    ok(s.put("d/one", b"one"));
    assert!(s.put_new("d/two", b"2").unwrap(), "{url}: put_new creates");
    assert!(!s.put_new("d/two", b"again").unwrap(), "{url}: an existing name is never replaced by put_new");
    assert_eq!(s.get("d/two").unwrap().unwrap(), b"2");
    assert_eq!(s.get("d/one").unwrap().unwrap(), b"one");
    assert_eq!(s.get("d/none").unwrap(), None);
    assert_eq!(s.names("d").unwrap(), vec!["d/one", "d/two"]);
    assert_eq!(s.names("").unwrap(), vec!["d"]);
    assert!(s.list("").unwrap()[0].is_dir);
    let files = s.list("d").unwrap();
    assert_eq!((files[0].len, files[0].is_dir), (3, false));
    assert!(files[0].modified_ms.is_some(), "{url}: a file has a modification time");
    assert_eq!(s.names("missing").unwrap(), Vec::<String>::new());
    assert_eq!(s.get_range("d/one", 1, 10).unwrap(), b"ne");
    assert_eq!(s.get_range("d/one", 3, 10).unwrap(), b"");
    let mut text = String::new();
    s.reader("d/one", 2).read_to_string(&mut text).unwrap();
    assert_eq!(text, "one");
    assert!(s.reader("d/none", 2).read_to_string(&mut text).is_err(), "{url}: reading a missing name fails");
    ok(s.put("staged/part-0", b"p"));
    ok(s.put("staged/sub/part-1", b"q"));
    ok(s.put("out/old", b"o"));
    ok(s.rename_dir("staged", "out"));
    assert_eq!(s.names("out").unwrap(), vec!["out/part-0", "out/sub"]);
    assert_eq!(s.get("out/sub/part-1").unwrap().unwrap(), b"q");
    assert_eq!(s.names("staged").unwrap(), Vec::<String>::new());
    ok(s.delete("d"));
    ok(s.delete("d"));
    assert_eq!(s.names("").unwrap(), vec!["out"]);
    ok(s.delete("out/part-0"));
    assert_eq!(s.names("out").unwrap(), vec!["out/sub"]);
}

/// A service process started for a test, killed when dropped.
pub struct Service {
    child: std::process::Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// The port it listens on (loopback).
    pub port: u16,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    /// Waits until `child` listens on `port` of loopback (30 s at most) and wraps it.
    ///
    /// # Panics
    /// When the process exits or does not listen in time (a test helper).
    pub fn listening(mut child: std::process::Child, port: u16, what: &str) -> Service {
        let watch = crate::clock::Stopwatch::start();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{what} exited at start ({status})");
            }
            assert!(watch.elapsed() < Duration::from_secs(30), "{what} did not listen on 127.0.0.1:{port} in 30 s");
            crate::clock::real_sleep(Duration::from_millis(30));
        }
        Service { child, endpoint: format!("http://127.0.0.1:{port}"), port }
    }

    /// moto's server (S3, Kinesis, ...) on a free loopback port, in memory. With
    /// `free_requests: Some(n)`, only its first `n` requests go unauthenticated: from then on it
    /// checks credentials (and knows none).
    ///
    /// # Panics
    /// When moto is not installed (`scripts/test.sh` installs it) or does not start.
    pub fn moto(free_requests: Option<u32>) -> Service {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port());
        Service::moto_on(port.unwrap_or_else(|e| panic!("no free port: {e}")), free_requests)
    }

    /// [`moto`](Self::moto) on `port`: a store that comes back where one went away (empty: moto
    /// keeps nothing).
    ///
    /// # Panics
    /// As [`moto`](Self::moto).
    pub fn moto_on(port: u16, free_requests: Option<u32>) -> Service {
        let bin =
            installed("EMBER_MOTO", "/tmp/ember-services/venv/bin/moto_server", "pip install moto[server]==5.2.5");
        let mut cmd = std::process::Command::new(bin);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some(n) = free_requests {
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string());
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start moto_server: {e}"));
        Service::listening(child, port, "moto_server")
    }

    /// Sends one plain HTTP/1.1 request to the service and returns the status code (for setup
    /// calls such as creating a bucket: `PUT /bucket`).
    ///
    /// # Panics
    /// When the service does not answer (a test helper).
    pub fn http(&self, method: &str, path: &str) -> u16 {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("the service answers");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        );
        c.write_all(request.as_bytes()).expect("request sent");
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer);
        answer
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP answer: {answer}"))
    }
}

/// The path in environment variable `var`, or `default`, which must exist.
///
/// # Panics
/// When it does not, saying how to install it (a test helper).
pub fn installed(var: &str, default: &str, how: &str) -> String {
    let path = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} does not exist: run `scripts/test.sh` (it installs it: {how}), or set {var}"
    );
    path
}
