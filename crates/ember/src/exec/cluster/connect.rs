//! Connecting the processes: Ember's own sockets with a deadline, a handshake that checks that
//! both ends run the same cluster and the same job, one data connection per peer for timely and
//! one control connection per peer for the [`Mesh`](super::Mesh).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use crate::clock::{real_sleep, Stopwatch};
use crate::error::{Error, Result};

const MAGIC: u32 = 0x454d_4252; // "EMBR"
const VERSION: u8 = 1;
const DATA: u8 = 0;
const CONTROL: u8 = 1;

/// What this process is in its cluster.
#[derive(Debug, Clone)]
pub(crate) struct Membership {
    pub hosts: Vec<String>,
    pub process: usize,
    pub workers: usize,
    pub connect_timeout: Duration,
    pub failure_timeout: Duration,
    /// A hash of the job's plan (its fingerprint): every process must build the same dataflow.
    pub plan: u64,
}

impl Membership {
    pub(super) fn peer(&self, p: usize) -> String {
        format!("process {p} ({})", self.hosts[p])
    }

    fn hello(&self, kind: u8) -> Hello {
        Hello {
            kind,
            process: self.process as u32,
            processes: self.hosts.len() as u32,
            workers: self.workers as u32,
            hosts: hosts_hash(&self.hosts),
            plan: self.plan,
        }
    }
}

/// The first bytes on every connection, both ways.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Hello {
    kind: u8,
    process: u32,
    processes: u32,
    workers: u32,
    hosts: u64,
    plan: u64,
}

impl Hello {
    const LEN: usize = 4 + 1 + 1 + 4 + 4 + 4 + 8 + 8;

    fn write(&self, s: &mut TcpStream) -> std::io::Result<()> {
        let mut b = Vec::with_capacity(Self::LEN);
        b.extend_from_slice(&MAGIC.to_le_bytes());
        b.push(VERSION);
        b.push(self.kind);
        b.extend_from_slice(&self.process.to_le_bytes());
        b.extend_from_slice(&self.processes.to_le_bytes());
        b.extend_from_slice(&self.workers.to_le_bytes());
        b.extend_from_slice(&self.hosts.to_le_bytes());
        b.extend_from_slice(&self.plan.to_le_bytes());
        s.write_all(&b)
    }

    fn read(s: &mut TcpStream) -> std::result::Result<Hello, String> {
        let mut b = [0u8; Self::LEN];
        s.read_exact(&mut b).map_err(|e| format!("no handshake: {e}"))?;
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap_or_default());
        if u32_at(0) != MAGIC {
            return Err("not an Ember process (wrong handshake)".into());
        }
        if b[4] != VERSION {
            return Err(format!("another version of Ember's cluster protocol ({}, here {VERSION})", b[4]));
        }
        Ok(Hello {
            kind: b[5],
            process: u32_at(6),
            processes: u32_at(10),
            workers: u32_at(14),
            hosts: u64::from_le_bytes(b[18..26].try_into().unwrap_or_default()),
            plan: u64::from_le_bytes(b[26..34].try_into().unwrap_or_default()),
        })
    }

    /// Why a peer's hello does not fit this process's membership.
    fn mismatch(&self, me: &Membership) -> Option<String> {
        let mine = me.hello(self.kind);
        if self.processes != mine.processes || self.workers != mine.workers {
            return Some(format!(
                "it runs as one of {} processes x {} workers, this one as one of {} x {}",
                self.processes, self.workers, mine.processes, mine.workers
            ));
        }
        if self.hosts != mine.hosts {
            return Some("it was started with another cluster.hosts".into());
        }
        if self.plan != mine.plan {
            return Some(
                "it runs another job: its plan (streams and outputs, in declaration order, and the app name) differs from this process's; every process must run the same program with the same arguments".into(),
            );
        }
        if self.process as usize >= me.hosts.len() || self.process as usize == me.process {
            return Some(format!("it claims to be process {}", self.process));
        }
        None
    }
}

fn hosts_hash(hosts: &[String]) -> u64 {
    crate::exec::key_hash(hosts)
}

/// The connections of this process to its peers: the data connections go to timely, the
/// control connections stay here.
pub(crate) struct Connections {
    pub data: Vec<Option<TcpStream>>,
    pub control: Vec<Option<TcpStream>>,
}

/// Connects this process to every other process of the cluster, or fails after
/// `connect_timeout` with an error naming the processes that did not answer.
pub(crate) fn connect(me: &Membership) -> Result<Connections> {
    super::mesh::install_panic_hook();
    let n = me.hosts.len();
    let listener = TcpListener::bind(&me.hosts[me.process]).map_err(|e| {
        Error::Cluster(format!("process {} cannot listen on {}: {e}", me.process, me.hosts[me.process]))
    })?;
    listener.set_nonblocking(true).map_err(|e| Error::Cluster(format!("listening socket: {e}")))?;
    let watch = Stopwatch::start();
    let mut data: Vec<Option<TcpStream>> = (0..n).map(|_| None).collect();
    let mut control: Vec<Option<TcpStream>> = (0..n).map(|_| None).collect();
    let mut last_note = Duration::ZERO;
    // Lower-numbered processes are connected to, higher-numbered ones accepted: one data and
    // one control connection per pair, each opened by the higher-numbered process.
    loop {
        let missing: Vec<usize> =
            (0..n).filter(|&p| p != me.process && (data[p].is_none() || control[p].is_none())).collect();
        if missing.is_empty() {
            break;
        }
        let elapsed = watch.elapsed();
        let waiting = || missing.iter().map(|&p| me.peer(p)).collect::<Vec<_>>().join(", ");
        if elapsed >= me.connect_timeout {
            return Err(Error::Cluster(format!(
                "process {} of {n}: no connection with {} after {:.1} s (cluster.connect_timeout); start every process of the job, each with the same cluster.hosts",
                me.process,
                waiting(),
                elapsed.as_secs_f64()
            )));
        }
        if elapsed >= last_note + Duration::from_secs(5) {
            last_note = elapsed;
            tracing::info!("process {} is waiting for {}", me.process, waiting());
        }
        // A peer that connected and then went away (killed during the start) never returns on
        // that connection: stop now rather than at the timeout.
        for (p, s) in control.iter().enumerate().filter_map(|(p, s)| Some((p, s.as_ref()?))) {
            let _ = s.set_nonblocking(true);
            let gone = matches!(s.peek(&mut [0u8; 1]), Ok(0));
            let _ = s.set_nonblocking(false);
            if gone {
                return Err(Error::Cluster(format!(
                    "lost {} during the start: its connection closed (the process exited or was killed)",
                    me.peer(p)
                )));
            }
        }
        let mut progressed = false;
        for &p in missing.iter().filter(|&&p| p < me.process) {
            for (kind, slot) in [(DATA, &mut data[p]), (CONTROL, &mut control[p])] {
                if slot.is_some() {
                    continue;
                }
                if let Ok(mut s) = TcpStream::connect_timeout(&resolve(&me.hosts[p])?, Duration::from_millis(500)) {
                    match handshake(&mut s, me, kind, true) {
                        Ok((q, _)) if q == p => {
                            *slot = Some(s);
                            progressed = true;
                        }
                        Ok((q, _)) => tracing::warn!("{} answered as process {q}", me.peer(p)),
                        Err(e) if e.starts_with("mismatch:") => {
                            return Err(Error::Cluster(format!("{}: {}", me.peer(p), e[9..].trim())))
                        }
                        // Not listening for us yet, or a process of an earlier run going away.
                        Err(e) => tracing::debug!("connecting to {}: {e}", me.peer(p)),
                    }
                }
            }
        }
        loop {
            match listener.accept() {
                Ok((mut s, from)) => {
                    let _ = s.set_nonblocking(false);
                    match handshake(&mut s, me, 0, false) {
                        Ok((q, kind)) => {
                            let slot = if kind == CONTROL { &mut control[q] } else { &mut data[q] };
                            *slot = Some(s);
                            progressed = true;
                        }
                        Err(e) => {
                            if let Some(why) = e.strip_prefix("mismatch:") {
                                return Err(Error::Cluster(format!("a process at {from}: {}", why.trim())));
                            }
                            tracing::warn!("ignoring a connection from {from}: {e}");
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    return Err(Error::Cluster(format!("accepting connections on {}: {e}", me.hosts[me.process])))
                }
            }
        }
        if !progressed {
            real_sleep(Duration::from_millis(50));
        }
    }
    for s in data.iter().flatten() {
        let _ = s.set_nodelay(true);
    }
    Ok(Connections { data, control })
}

fn resolve(host: &str) -> Result<std::net::SocketAddr> {
    use std::net::ToSocketAddrs;
    host.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| Error::Cluster(format!("cannot resolve the cluster host `{host}`")))
}

/// Exchanges hellos on a new connection; the peer's process index and the connection's kind.
/// The connecting side sends first. A peer of another cluster is an error starting with
/// `mismatch:`.
fn handshake(
    s: &mut TcpStream,
    me: &Membership,
    kind: u8,
    connecting: bool,
) -> std::result::Result<(usize, u8), String> {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let io = |e: std::io::Error| format!("handshake: {e}");
    let theirs = if connecting {
        me.hello(kind).write(s).map_err(io)?;
        Hello::read(s)?
    } else {
        let theirs = Hello::read(s)?;
        me.hello(theirs.kind).write(s).map_err(io)?;
        theirs
    };
    if let Some(why) = theirs.mismatch(me) {
        return Err(format!("mismatch: {why}"));
    }
    let _ = s.set_read_timeout(None);
    Ok((theirs.process as usize, theirs.kind))
}
