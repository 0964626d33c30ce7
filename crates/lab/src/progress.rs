//! Progress lines on stderr: lab commands take seconds, and say what they are doing.

use std::time::Instant;

pub struct Progress {
    prefix: String,
    start: Instant,
}

impl Progress {
    pub fn new(prefix: &str) -> Progress {
        Progress {
            prefix: prefix.to_string(),
            start: Instant::now(),
        }
    }

    pub fn step(&self, msg: impl std::fmt::Display) {
        eprintln!(
            "[lab {} {:>5.1}s] {msg}",
            self.prefix,
            self.start.elapsed().as_secs_f64()
        );
    }

    pub fn elapsed_s(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
}
