//! The agent's resolver: the name map every listener answers from, one [`listener::Listener`] per
//! local container, and forwarding. The agent tells it the cluster's records ([`DnsServer::set_names`])
//! and which containers live here on which networks ([`DnsServer::set_local`]).

pub mod forward;
mod listener;

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use hickory_proto::op::ResponseCode;
use weft_model::{Endpoint, Network};

use crate::answer::{self, Outcome, Transport};
use crate::names::NameMap;
use crate::stats::{Counters, DnsStats};
use listener::{ns_ino_at, remove_redirect, Listener};

/// The agent's own network namespace (its main thread's: never entered another).
const OWN_NETNS: &str = "/proc/self/ns/net";

#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// The cluster domain, e.g. `weft.internal`.
    pub domain: String,
    /// Where names outside weft's zones go; empty: nowhere (REFUSED).
    pub upstreams: Vec<SocketAddr>,
    /// The address (in every container) the resolver listens on, port included.
    pub listen: SocketAddrV4,
}

impl DnsConfig {
    pub fn new(domain: &str, upstreams: Vec<SocketAddr>) -> DnsConfig {
        DnsConfig {
            domain: domain.trim_end_matches('.').to_string(),
            upstreams,
            listen: SocketAddrV4::new(weft_model::RESOLVER_ADDR, 53),
        }
    }
}

/// What every listener task shares.
pub struct Shared {
    map: RwLock<Arc<NameMap>>,
    upstreams: Vec<SocketAddr>,
    pub(crate) counters: Counters,
    rotation: AtomicUsize,
}

impl Shared {
    /// Answers from the map (or says to forward), counting what happened.
    fn handle(&self, query: &[u8], t: Transport, nets: &RwLock<Vec<String>>) -> Outcome {
        self.counters.query();
        let map = self.map.read().expect("not poisoned").clone();
        let nets = nets.read().expect("not poisoned").clone();
        let rotation = self.rotation.fetch_add(1, Ordering::Relaxed);
        let out = answer::answer(&map, &nets, query, t, rotation, !self.upstreams.is_empty());
        match &out {
            Outcome::Reply { kind, .. } => self.counters.kind(*kind),
            Outcome::Drop => self.counters.kind(answer::Kind::Malformed),
            Outcome::Forward if self.upstreams.is_empty() => {
                self.counters.kind(answer::Kind::Refused);
                return match answer::failure(query, ResponseCode::Refused, t) {
                    Some(bytes) => Outcome::Reply {
                        bytes,
                        kind: answer::Kind::Refused,
                    },
                    None => Outcome::Drop,
                };
            }
            Outcome::Forward => {}
        }
        out
    }

    /// The upstream's response, or SERVFAIL when none answered.
    async fn forward(&self, query: &[u8], t: Transport) -> Option<Vec<u8>> {
        self.counters.forwarded();
        let r = match t {
            Transport::Udp => forward::udp(&self.upstreams, query).await,
            Transport::Tcp => forward::tcp(&self.upstreams, query).await,
        };
        r.or_else(|| {
            self.counters.forward_failed();
            answer::failure(query, ResponseCode::ServFail, t)
        })
    }
}

pub struct DnsServer {
    cfg: DnsConfig,
    shared: Arc<Shared>,
    /// Per container (its netns path as recorded in endpoints).
    listeners: HashMap<String, Listener>,
    /// What the last [`DnsServer::set_local`] asked for, for [`DnsServer::refresh`].
    wanted: BTreeMap<String, Vec<String>>,
    /// The last error opening each container's resolver, logged once.
    errors: HashMap<String, String>,
    generation: u32,
}

impl DnsServer {
    pub fn new(cfg: DnsConfig) -> DnsServer {
        let shared = Arc::new(Shared {
            map: RwLock::new(Arc::new(NameMap::new(&cfg.domain))),
            upstreams: cfg.upstreams.clone(),
            counters: Counters::default(),
            rotation: AtomicUsize::new(0),
        });
        DnsServer {
            cfg,
            shared,
            listeners: HashMap::new(),
            wanted: BTreeMap::new(),
            errors: HashMap::new(),
            generation: 0,
        }
    }

    pub fn config(&self) -> &DnsConfig {
        &self.cfg
    }

    /// Replaces the name map with one of these records (the whole cluster's).
    pub fn set_names<'a>(
        &mut self,
        networks: impl IntoIterator<Item = &'a Network>,
        endpoints: impl IntoIterator<Item = &'a Endpoint>,
    ) {
        self.generation = self.generation.wrapping_add(1);
        let map = NameMap::build(&self.cfg.domain, self.generation, networks, endpoints);
        *self.shared.map.write().expect("not poisoned") = Arc::new(map);
    }

    /// The local containers (netns path → networks): opens a resolver in each new one, updates
    /// the networks of the others, closes the rest.
    pub async fn set_local(&mut self, wanted: BTreeMap<String, Vec<String>>) {
        self.wanted = wanted;
        self.refresh().await;
    }

    /// Brings the listeners to what was last asked for: also closes those whose namespace is gone
    /// or replaced (a container deleted without a detach must not be kept alive by its
    /// resolver), and retries those that failed to open.
    pub async fn refresh(&mut self) {
        let wanted = &self.wanted;
        let closing: Vec<String> = self
            .listeners
            .iter()
            .filter(|(path, l)| !wanted.contains_key(*path) || ns_ino_at(path) != Some(l.ns_ino))
            .map(|(path, _)| path.clone())
            .collect();
        for path in closing {
            let l = self.listeners.remove(&path).expect("listed");
            let ino = l.ns_ino;
            // The sockets go first (dropping aborts their tasks); then the redirect, if the
            // namespace lives on.
            drop(l);
            let p = path.clone();
            match tokio::task::spawn_blocking(move || remove_redirect(&p, ino)).await {
                Ok(Ok(())) | Ok(Err(_)) => {}
                Err(e) => tracing::debug!("removing the redirect of {path}: {e}"),
            }
            tracing::debug!(container = %path, "resolver closed");
        }
        let wanted = &self.wanted;
        self.errors.retain(|p, _| wanted.contains_key(p));
        for (path, nets) in &self.wanted {
            if let Some(l) = self.listeners.get(path) {
                let mut cur = l.networks.write().expect("not poisoned");
                if *cur != *nets {
                    *cur = nets.clone();
                }
                continue;
            }
            match ns_ino_at(path) {
                None => continue,
                // The agent's own namespace "attached" as a container: a resolver there would
                // forward to itself (or take the host's own stub address).
                Some(ino) if Some(ino) == ns_ino_at(OWN_NETNS) => {
                    if self.errors.insert(path.clone(), "own".into()).is_none() {
                        tracing::warn!(container = %path, "is the agent's own network namespace: no resolver there");
                    }
                    continue;
                }
                Some(_) => {}
            }
            match Listener::open(path, self.cfg.listen, nets.clone(), self.shared.clone()).await {
                Ok(l) => {
                    tracing::debug!(container = %path, "resolver opened");
                    self.errors.remove(path);
                    self.listeners.insert(path.clone(), l);
                }
                Err(e) => {
                    let text = format!("{e:#}");
                    if self.errors.get(path) != Some(&text) {
                        tracing::warn!(container = %path, "opening its resolver: {text}");
                    }
                    self.errors.insert(path.clone(), text);
                }
            }
        }
    }

    pub fn stats(&self) -> DnsStats {
        self.shared.counters.snapshot(self.listeners.len())
    }
}
