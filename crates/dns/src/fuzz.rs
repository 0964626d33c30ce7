//! The query path under fuzzing: bodies shared by the cargo-fuzz target (`fuzz/`) and the stable
//! smoke test (`tests/fuzz_smoke.rs`). Any bytes may arrive on a container's resolver socket: the
//! answer must never panic, and whatever it sends back must be a well-formed response to that query
//! that fits the transport.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use weft_model::{DatapathChoice, Endpoint, Mac, Network, SCHEMA_VERSION};

use crate::answer::{answer, Outcome, Transport, EDNS_PAYLOAD};
use crate::names::NameMap;

/// A small cluster: network `a` with `web` and a service `svc` of three, network `b` with `db`.
pub fn map() -> NameMap {
    let net = |name: &str, s4: &str, s6: &str| Network {
        schema: SCHEMA_VERSION,
        name: name.into(),
        vni: 1,
        subnet4: s4.parse().expect("valid"),
        subnet6: Some(s6.parse().expect("valid")),
        gateway4: "10.0.0.1".parse().expect("valid"),
        gateway6: None,
        mtu: 1450,
        encrypted: false,
        psk_fingerprint: None,
        datapath: DatapathChoice::Auto,
        encap: Default::default(),
        egress: true,
        labels: Default::default(),
    };
    let ep = |id: &str, network: &str, v4: &str, v6: &str, name: &str| Endpoint {
        schema: SCHEMA_VERSION,
        id: id.into(),
        network: network.into(),
        host: "h1".into(),
        container: format!("/run/netns/{id}"),
        ifname: "eth0".into(),
        host_ifname: format!("wv{id}"),
        mac: Mac::ZERO,
        ipv4: v4.parse().expect("valid"),
        ipv6: Some(v6.parse().expect("valid")),
        names: vec![name.into()],
        labels: Default::default(),
        kind: Default::default(),
        publish: Vec::new(),
    };
    let nets = [
        net("a", "10.1.0.0/24", "fd01::/64"),
        net("b", "10.2.0.0/24", "fd02::/64"),
    ];
    let eps = [
        ep("1", "a", "10.1.0.2/24", "fd01::2/64", "web"),
        ep("2", "a", "10.1.0.3/24", "fd01::3/64", "svc"),
        ep("3", "a", "10.1.0.4/24", "fd01::4/64", "svc"),
        ep("4", "a", "10.1.0.5/24", "fd01::5/64", "svc"),
        ep("5", "b", "10.2.0.2/24", "fd02::2/64", "db"),
    ];
    NameMap::build("weft.internal", 1, &nets, &eps)
}

/// Runs `data` as a query over both transports and checks what comes back.
pub fn query(data: &[u8]) {
    let map = map();
    let nets = vec!["a".to_string()];
    let rotation = data.first().copied().unwrap_or(0) as usize;
    for t in [Transport::Udp, Transport::Tcp] {
        if let Outcome::Reply { bytes, .. } = answer(&map, &nets, data, t, rotation, true) {
            let m = Message::from_vec(&bytes).expect("weft's own response parses");
            assert_eq!(m.metadata.message_type, MessageType::Response);
            assert_eq!(&bytes[..2], &data[..2], "the response keeps the query's id");
            if t == Transport::Udp {
                assert!(
                    bytes.len() <= usize::from(EDNS_PAYLOAD),
                    "UDP response too long"
                );
            }
        }
    }
}

/// Valid queries to mutate: each kind of name weft answers, and some it forwards.
pub fn seeds() -> Vec<Vec<u8>> {
    let q = |name: &str, t: RecordType, edns: bool| {
        let mut m = Message::new(0xbeef, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).expect("valid"), t));
        if edns {
            m.edns = Some(Edns::new());
        }
        m.to_vec().expect("encodes")
    };
    vec![
        q("web.", RecordType::A, false),
        q("svc.a.", RecordType::AAAA, true),
        q("svc.a.weft.internal.", RecordType::ANY, true),
        q("nope.a.weft.internal.", RecordType::A, false),
        q("2.0.1.10.in-addr.arpa.", RecordType::PTR, false),
        q("weft.internal.", RecordType::SOA, true),
        q("db.b.", RecordType::A, false),
        q("example.com.", RecordType::MX, false),
    ]
}
