//! The engine's workers: thread `i` serves, through one epoll set, the `i`-th receive socket of
//! every bound transport and the `i`-th queue of every network's TAP.
//!
//! Why one thread for both directions rather than a thread per socket and per TAP queue: a
//! frame written into a TAP is usually answered within that very `writev` (the bridge and the
//! container's stack run in the writer's softirq: a ping reply, a TCP ACK), and tun's flow
//! table puts the answer on the queue the frame was written into. The thread that wrote it then
//! finds the answer ready on its next `epoll_wait` and sends it without sleeping, where separate
//! threads would have had to wake a second one. A ping's round trip through two engines wakes
//! two engine threads instead of four, which is most of what the engine adds to latency.
//!
//! Epoll is level-triggered: a source served up to its budget (so that a busy TAP does not
//! starve the sockets) is reported again at once. A source that fails (a TAP being torn down)
//! is set aside and retried later, so that its error does not spin the worker.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Acquire;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::engine::{Shared, Transport};
use crate::rx::RxWorker;
use crate::sys::{Epoll, EventFd};
use crate::tx::TxWorker;

/// How a turn on one source ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Polled {
    /// Nothing more to read now.
    Drained,
    /// Budget used up with more waiting (epoll reports it again).
    More,
    /// An error other than "would block": the source is set aside for a while.
    Failed,
}

/// A change to a worker's set of sources.
pub(crate) enum Cmd {
    /// Serve a transport's receive socket.
    Sock(RxWorker),
    /// Serve a network's TAP queue.
    Net(TxWorker),
    /// Stop serving network `vni`'s queue (dropping the worker's reference to the network);
    /// answered once done.
    Remove(u32, mpsc::SyncSender<()>),
}

/// Where a worker's commands wait, with the eventfd that rings it.
pub(crate) struct Mailbox {
    cmds: Mutex<Vec<Cmd>>,
    bell: EventFd,
}

impl Mailbox {
    pub(crate) fn new() -> std::io::Result<Mailbox> {
        Ok(Mailbox {
            cmds: Mutex::new(Vec::new()),
            bell: EventFd::new()?,
        })
    }

    pub(crate) fn send(&self, cmd: Cmd) {
        self.cmds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(cmd);
        self.bell.signal();
    }

    fn take(&self) -> Vec<Cmd> {
        self.bell.clear();
        std::mem::take(&mut *self.cmds.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

const TOKEN_STOP: u64 = 0;
const TOKEN_MAIL: u64 = 1;
/// Sockets: this plus the transport's index; TAP queues: `TAP_BIT | vni`.
const TOKEN_SOCK: u64 = 2;
const TAP_BIT: u64 = 1 << 32;

/// How long a failed source is left aside.
const RETRY_SOCK: Duration = Duration::from_millis(10);
const RETRY_TAP: Duration = Duration::from_millis(100);

fn sock_index(kind: Transport) -> usize {
    match kind {
        Transport::Vxlan => 0,
        Transport::Secure => 1,
        Transport::Gre => 2,
    }
}

pub(crate) struct Worker {
    shared: Arc<Shared>,
    mailbox: Arc<Mailbox>,
    epoll: Epoll,
    socks: [Option<RxWorker>; 3],
    taps: HashMap<u32, TxWorker>,
    /// Sources set aside after an error, with when to watch them again.
    resting: Vec<(u64, Instant)>,
}

impl Worker {
    pub(crate) fn new(shared: Arc<Shared>, mailbox: Arc<Mailbox>) -> std::io::Result<Worker> {
        let epoll = Epoll::new()?;
        epoll.add(shared.wake.fd(), TOKEN_STOP)?;
        epoll.add(mailbox.bell.fd(), TOKEN_MAIL)?;
        Ok(Worker {
            shared,
            mailbox,
            epoll,
            socks: [None, None, None],
            taps: HashMap::new(),
            resting: Vec::new(),
        })
    }

    pub(crate) fn run(mut self) {
        let mut ready = Vec::with_capacity(64);
        loop {
            let timeout = self.rest_timeout();
            if let Err(e) = self.epoll.wait(&mut ready, timeout) {
                tracing::warn!(error = %e, "epoll_wait failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            if self.shared.stop.load(Acquire) {
                return;
            }
            for &token in &ready {
                let polled = match token {
                    TOKEN_STOP => continue,
                    TOKEN_MAIL => {
                        self.commands();
                        continue;
                    }
                    t if t & TAP_BIT != 0 => match self.taps.get_mut(&((t & !TAP_BIT) as u32)) {
                        Some(w) => w.poll(),
                        None => continue,
                    },
                    t => match self
                        .socks
                        .get_mut((t - TOKEN_SOCK) as usize)
                        .and_then(Option::as_mut)
                    {
                        Some(w) => w.poll(),
                        None => continue,
                    },
                };
                if polled == Polled::Failed {
                    self.rest(token);
                }
            }
            self.wake_rested();
        }
    }

    fn fd_of(&self, token: u64) -> Option<std::os::fd::RawFd> {
        if token & TAP_BIT != 0 {
            self.taps.get(&((token & !TAP_BIT) as u32)).map(|w| w.fd())
        } else {
            self.socks
                .get((token - TOKEN_SOCK) as usize)
                .and_then(Option::as_ref)
                .map(|w| w.fd())
        }
    }

    fn rest(&mut self, token: u64) {
        if let Some(fd) = self.fd_of(token) {
            let _ = self.epoll.remove(fd);
            let d = if token & TAP_BIT != 0 {
                RETRY_TAP
            } else {
                RETRY_SOCK
            };
            self.resting.push((token, Instant::now() + d));
        }
    }

    fn rest_timeout(&self) -> i32 {
        match self.resting.iter().map(|(_, at)| *at).min() {
            None => -1,
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                i32::try_from(left.as_millis()).unwrap_or(i32::MAX).max(1)
            }
        }
    }

    fn wake_rested(&mut self) {
        if self.resting.is_empty() {
            return;
        }
        let now = Instant::now();
        let (due, rest): (Vec<_>, Vec<_>) = self.resting.drain(..).partition(|(_, at)| *at <= now);
        self.resting = rest;
        for (token, _) in due {
            if let Some(fd) = self.fd_of(token) {
                if let Err(e) = self.epoll.add(fd, token) {
                    tracing::warn!(error = %e, "watching a descriptor again");
                }
            }
        }
    }

    fn commands(&mut self) {
        for cmd in self.mailbox.take() {
            match cmd {
                Cmd::Sock(w) => {
                    let i = sock_index(w.kind());
                    let token = TOKEN_SOCK + i as u64;
                    if let Err(e) = self.epoll.add(w.fd(), token) {
                        tracing::error!(error = %e, kind = ?w.kind(), "cannot watch a socket");
                        continue;
                    }
                    self.socks[i] = Some(w);
                }
                Cmd::Net(w) => {
                    let token = TAP_BIT | u64::from(w.vni());
                    if let Err(e) = self.epoll.add(w.fd(), token) {
                        tracing::error!(error = %e, vni = w.vni(), "cannot watch a tap queue");
                        continue;
                    }
                    self.taps.insert(w.vni(), w);
                }
                Cmd::Remove(vni, done) => {
                    let token = TAP_BIT | u64::from(vni);
                    if let Some(w) = self.taps.remove(&vni) {
                        let _ = self.epoll.remove(w.fd());
                    }
                    self.resting.retain(|(t, _)| *t != token);
                    let _ = done.send(());
                }
            }
        }
    }
}
