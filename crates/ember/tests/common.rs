//! Shared helpers of the integration tests.
#![allow(dead_code)]

use std::process::Output;

/// Runs the test named `name` of this test binary in a child process with `env`, and returns its
/// output. Child tests are `#[ignore]`d, so they run only when a parent starts them.
pub fn run_child(name: &str, env: &[(&str, String)]) -> Child {
    let mut cmd = ember::testing::child_command(name, env);
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    Child(cmd.spawn().expect("spawn child test process"))
}

/// A child test process.
pub struct Child(std::process::Child);

impl Child {
    /// Whether the child ended (and how), without waiting.
    pub fn try_finished(&mut self) -> Option<std::process::ExitStatus> {
        self.0.try_wait().expect("poll child")
    }

    /// The child's output, whether it succeeded or not (it has ended or is waited for).
    pub fn output(self) -> Output {
        self.0.wait_with_output().expect("wait for child")
    }

    /// SIGKILLs the child and reaps it.
    pub fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// Waits for the child; panics with its output if it failed.
    pub fn finish(self) -> Output {
        let out = self.0.wait_with_output().expect("wait for child");
        assert!(
            out.status.success(),
            "child failed: {}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// Free TCP ports on 127.0.0.1 (bound and released; the OS does not hand them out again at once).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind")).collect();
    listeners.iter().map(|l| l.local_addr().expect("addr").port()).collect()
}

/// The lines of `stdout` that start with `tag `, without the tag.
pub fn tagged(stdout: &[u8], tag: &str) -> Vec<String> {
    ember::testing::tagged(stdout, tag)
}

/// Runs the child test `name` as the 2 processes x 2 workers of one job on loopback; returns the
/// outputs of process 0 and process 1.
pub fn run_cluster(name: &str, extra: &[(&str, String)]) -> Vec<Output> {
    ember::testing::run_cluster(name, extra)
}

/// A seeded pseudo-random sequence (splitmix64) for generated test input.
pub fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed;
    move || {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A batch in a canonical form: sorted, then printed.
pub fn norm<T: std::fmt::Debug + Ord>(mut v: Vec<T>) -> String {
    v.sort();
    format!("{v:?}")
}
