//! A query's bytes in, the response's bytes out (or "forward", or "drop"). Pure: the name map, the
//! asker's networks and a rotation offset are all it looks at.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::names::{Addrs, NameMap};
use crate::zone::{self, Resolution};

/// TTL of every answer: short, so that a detached container's name does not linger in caches.
pub const TTL: u32 = 5;
/// The UDP payload weft offers over EDNS (the DNS flag day 2020 value: no fragmentation).
pub const EDNS_PAYLOAD: u16 = 1232;
/// The classic UDP limit without EDNS.
const PLAIN_UDP_LIMIT: usize = 512;
const HEADER_LEN: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// What happened to a query, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Answered with records.
    Answered,
    /// A weft name without records of the asked type (NOERROR, SOA in authority).
    NoData,
    NxDomain,
    /// Could not be parsed, or asked nonsense (FORMERR or dropped).
    Malformed,
    /// An opcode or class weft does not serve.
    Refused,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Reply {
        bytes: Vec<u8>,
        kind: Kind,
    },
    /// Not weft's: send the query bytes upstream as they are.
    Forward,
    /// Not worth an answer (too short for a header, or itself a response); counted as malformed.
    Drop,
}

/// Answers `query` for a container on `networks`. `rotation` turns the order of a service's
/// endpoints; `recursion` says whether names outside weft are forwarded (the RA bit).
pub fn answer(
    map: &NameMap,
    networks: &[String],
    query: &[u8],
    transport: Transport,
    rotation: usize,
    recursion: bool,
) -> Outcome {
    if query.len() < HEADER_LEN || query[2] & 0x80 != 0 {
        return Outcome::Drop;
    }
    let req = match Message::from_vec(query) {
        Ok(m) => m,
        Err(_) => return formerr(query),
    };
    if req.metadata.op_code != OpCode::Query {
        return reply(
            &req,
            ResponseCode::NotImp,
            transport,
            recursion,
            Kind::Refused,
        );
    }
    if req.queries.len() != 1 {
        return formerr(query);
    }
    let q = &req.queries[0];
    if q.query_class() != DNSClass::IN {
        return reply(
            &req,
            ResponseCode::Refused,
            transport,
            recursion,
            Kind::Refused,
        );
    }
    let labels: Vec<String> = q
        .name()
        .iter()
        .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
        .collect();
    let found = zone::resolve(map, networks, &labels);
    let owner = q.name().clone();
    let qtype = q.query_type();
    let mut answers = Vec::new();
    match found.resolution {
        Resolution::NotOurs => return Outcome::Forward,
        Resolution::Addrs(mut addrs) => {
            let n = addrs.len();
            addrs.rotate_left(rotation % n.max(1));
            answers = address_records(&owner, qtype, &addrs);
        }
        Resolution::Ptr(target) => {
            if matches!(qtype, RecordType::PTR | RecordType::ANY) {
                if let Ok(t) = fqdn(&target) {
                    answers.push(Record::from_rdata(owner, TTL, RData::PTR(PTR(t))));
                }
            }
        }
        Resolution::Apex => {
            if matches!(qtype, RecordType::SOA | RecordType::ANY) {
                if let Some(soa) = soa_record(map, &found.zone) {
                    answers.push(soa);
                }
            }
        }
        Resolution::Empty => {}
        Resolution::NxDomain => {
            let mut m = response(&req, ResponseCode::NXDomain, recursion);
            m.authorities.extend(soa_record(map, &found.zone));
            return encode(m, &req, transport, Kind::NxDomain);
        }
    }
    let mut m = response(&req, ResponseCode::NoError, recursion);
    let kind = if answers.is_empty() {
        m.authorities.extend(soa_record(map, &found.zone));
        Kind::NoData
    } else {
        m.answers = answers;
        Kind::Answered
    };
    encode(m, &req, transport, kind)
}

/// The response to send when forwarding failed (`ServFail`) or is off (`Refused`); None for bytes
/// that [`answer`] would not have forwarded.
pub fn failure(query: &[u8], code: ResponseCode, transport: Transport) -> Option<Vec<u8>> {
    let req = Message::from_vec(query).ok()?;
    match reply(&req, code, transport, false, Kind::Refused) {
        Outcome::Reply { bytes, .. } => Some(bytes),
        _ => None,
    }
}

fn address_records(owner: &Name, qtype: RecordType, addrs: &[Addrs]) -> Vec<Record> {
    let mut out = Vec::new();
    if matches!(qtype, RecordType::A | RecordType::ANY) {
        out.extend(
            addrs
                .iter()
                .map(|a| Record::from_rdata(owner.clone(), TTL, RData::A(A(a.v4)))),
        );
    }
    if matches!(qtype, RecordType::AAAA | RecordType::ANY) {
        out.extend(
            addrs
                .iter()
                .filter_map(|a| a.v6)
                .map(|v6| Record::from_rdata(owner.clone(), TTL, RData::AAAA(AAAA(v6)))),
        );
    }
    out
}

fn fqdn(labels: &[String]) -> Result<Name, hickory_proto::ProtoError> {
    let mut n = Name::from_labels(labels.iter().map(|l| l.as_bytes()))?;
    n.set_fqdn(true);
    Ok(n)
}

/// The SOA of `zone` (labels; empty: the cluster domain), which stands in negative answers.
fn soa_record(map: &NameMap, zone: &[String]) -> Option<Record> {
    let domain = map.domain();
    let apex = fqdn(if zone.is_empty() { domain } else { zone }).ok()?;
    let with = |first: &str| {
        let mut l = vec![first.to_string()];
        l.extend(domain.iter().cloned());
        fqdn(&l).ok()
    };
    let soa = SOA::new(
        with("ns")?,
        with("hostmaster")?,
        map.generation(),
        60,
        10,
        600,
        TTL,
    );
    Some(Record::from_rdata(apex, TTL, RData::SOA(soa)))
}

fn response(req: &Message, code: ResponseCode, recursion: bool) -> Message {
    let mut m = Message::new(req.metadata.id, MessageType::Response, req.metadata.op_code);
    m.metadata.authoritative = code != ResponseCode::Refused && code != ResponseCode::ServFail;
    m.metadata.recursion_desired = req.metadata.recursion_desired;
    m.metadata.checking_disabled = req.metadata.checking_disabled;
    m.metadata.recursion_available = recursion;
    m.metadata.response_code = code;
    m.queries = req.queries.clone();
    if req.edns.is_some() {
        let mut e = Edns::new();
        e.set_max_payload(EDNS_PAYLOAD);
        m.edns = Some(e);
    }
    m
}

fn reply(
    req: &Message,
    code: ResponseCode,
    transport: Transport,
    recursion: bool,
    kind: Kind,
) -> Outcome {
    let mut m = response(req, code, recursion);
    m.metadata.authoritative = false;
    encode(m, req, transport, kind)
}

/// Encodes `m`; over UDP a response larger than the asker takes goes out truncated (TC set, no
/// records), and the asker retries over TCP.
fn encode(m: Message, req: &Message, transport: Transport, kind: Kind) -> Outcome {
    let limit = match (transport, &req.edns) {
        (Transport::Tcp, _) => usize::from(u16::MAX),
        (Transport::Udp, Some(e)) => usize::from(e.max_payload().clamp(512, EDNS_PAYLOAD)),
        (Transport::Udp, None) => PLAIN_UDP_LIMIT,
    };
    let bytes = match m.to_vec() {
        Ok(b) if b.len() <= limit => b,
        _ => {
            let mut t = m.truncate();
            t.metadata.truncation = true;
            match t.to_vec() {
                Ok(b) => b,
                Err(_) => return formerr_header(req.metadata.id, req.metadata.op_code),
            }
        }
    };
    Outcome::Reply { bytes, kind }
}

/// FORMERR for bytes that have a header but no sensible message: the header's id and opcode, no
/// sections.
fn formerr(query: &[u8]) -> Outcome {
    let id = u16::from_be_bytes([query[0], query[1]]);
    let opcode = OpCode::from_u8((query[2] >> 3) & 0x0f);
    formerr_header(id, opcode)
}

fn formerr_header(id: u16, op_code: OpCode) -> Outcome {
    let m = Message::error_msg(id, op_code, ResponseCode::FormErr);
    match m.to_vec() {
        Ok(bytes) => Outcome::Reply {
            bytes,
            kind: Kind::Malformed,
        },
        Err(_) => Outcome::Drop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::tests::sample;
    use hickory_proto::op::Query;

    fn nets(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn query(name: &str, t: RecordType, edns: bool) -> Vec<u8> {
        let mut m = Message::new(0x4242, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        if edns {
            let mut e = Edns::new();
            e.set_max_payload(4096);
            m.edns = Some(e);
        }
        m.to_vec().unwrap()
    }

    fn ask(networks: &[&str], name: &str, t: RecordType, rotation: usize) -> (Message, Kind) {
        match answer(
            &sample(),
            &nets(networks),
            &query(name, t, false),
            Transport::Udp,
            rotation,
            true,
        ) {
            Outcome::Reply { bytes, kind } => (Message::from_vec(&bytes).unwrap(), kind),
            other => panic!("{name}: expected a reply, got {other:?}"),
        }
    }

    fn addrs(m: &Message) -> Vec<String> {
        m.answers
            .iter()
            .map(|r| match &r.data {
                RData::A(a) => a.0.to_string(),
                RData::AAAA(a) => a.0.to_string(),
                RData::PTR(p) => p.0.to_string(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_aaaa_ptr() {
        let (m, kind) = ask(&["a"], "web.a.weft.internal.", RecordType::A, 0);
        assert_eq!(kind, Kind::Answered);
        assert_eq!(m.metadata.id, 0x4242);
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert!(m.metadata.authoritative && m.metadata.recursion_desired);
        assert_eq!(addrs(&m), ["10.1.0.2"]);
        assert_eq!(m.answers[0].ttl, TTL);
        let (m, _) = ask(&["a"], "web.a.", RecordType::AAAA, 0);
        assert_eq!(addrs(&m), ["fd01::2"]);
        let (m, _) = ask(&["a"], "2.0.1.10.in-addr.arpa.", RecordType::PTR, 0);
        assert_eq!(addrs(&m), ["web.a.weft.internal."]);
        let (m, _) = ask(&["a"], "WEB.", RecordType::A, 0);
        assert_eq!(
            m.answers[0].name.to_string(),
            "WEB.",
            "the asker's case is kept"
        );
    }

    #[test]
    fn services_rotate() {
        let firsts: Vec<String> = (0..3)
            .map(|r| addrs(&ask(&["a"], "svc.", RecordType::A, r).0)[0].clone())
            .collect();
        assert_eq!(firsts, ["10.1.0.4", "10.1.0.5", "10.1.0.6"]);
        let (m, _) = ask(&["a"], "svc.", RecordType::A, 4);
        assert_eq!(addrs(&m), ["10.1.0.5", "10.1.0.6", "10.1.0.4"]);
    }

    #[test]
    fn negative_answers_carry_the_soa() {
        let (m, kind) = ask(&["a"], "nope.a.", RecordType::A, 0);
        assert_eq!(kind, Kind::NxDomain);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert!(m.answers.is_empty());
        assert_eq!(m.authorities.len(), 1);
        assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
        assert_eq!(m.authorities[0].name.to_string(), "a.");
        let (m, kind) = ask(&["a"], "db.", RecordType::AAAA, 0);
        assert_eq!(kind, Kind::NoData);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(m.authorities[0].name.to_string(), "weft.internal.");
        let (m, kind) = ask(&["a"], "weft.internal.", RecordType::SOA, 0);
        assert_eq!(kind, Kind::Answered);
        assert_eq!(m.answers[0].record_type(), RecordType::SOA);
    }

    #[test]
    fn never_leaks_other_networks() {
        let (leak, _) = ask(&["a"], "secret.", RecordType::A, 0);
        let (none, _) = ask(&["a"], "nobody.", RecordType::A, 0);
        assert_eq!(leak.metadata.response_code, none.metadata.response_code);
        assert!(leak.answers.is_empty());
        for n in ["secret.b.", "2.0.2.10.in-addr.arpa.", "example.com."] {
            let out = answer(
                &sample(),
                &nets(&["a"]),
                &query(n, RecordType::A, false),
                Transport::Udp,
                0,
                true,
            );
            assert_eq!(out, Outcome::Forward, "{n}");
        }
    }

    #[test]
    fn edns_is_echoed_and_udp_truncates() {
        let out = answer(
            &sample(),
            &nets(&["a"]),
            &query("svc.", RecordType::A, true),
            Transport::Udp,
            0,
            true,
        );
        let Outcome::Reply { bytes, .. } = out else {
            panic!()
        };
        let m = Message::from_vec(&bytes).unwrap();
        assert_eq!(m.edns.as_ref().unwrap().max_payload(), EDNS_PAYLOAD);
        // A service too big for 512 bytes: truncated over UDP, whole over TCP.
        let eps: Vec<_> = (0..60)
            .map(|i| {
                crate::names::tests::ep(
                    &format!("s{i}"),
                    "a",
                    &format!("10.1.0.{}/24", i + 10),
                    None,
                    &["big"],
                )
            })
            .collect();
        let nets_ = [crate::names::tests::net("a", "10.1.0.0/24", "fd01::/64")];
        let map = NameMap::build("weft.internal", 1, &nets_, &eps);
        let q = query("big.", RecordType::A, false);
        let Outcome::Reply { bytes, .. } = answer(&map, &nets(&["a"]), &q, Transport::Udp, 0, true)
        else {
            panic!()
        };
        let m = Message::from_vec(&bytes).unwrap();
        assert!(m.metadata.truncation && m.answers.is_empty());
        let Outcome::Reply { bytes, .. } = answer(&map, &nets(&["a"]), &q, Transport::Tcp, 0, true)
        else {
            panic!()
        };
        assert_eq!(Message::from_vec(&bytes).unwrap().answers.len(), 60);
    }

    #[test]
    fn malformed_queries() {
        let map = sample();
        let a = nets(&["a"]);
        let ask_raw = |b: &[u8]| answer(&map, &a, b, Transport::Udp, 0, true);
        assert_eq!(ask_raw(&[1, 2, 3]), Outcome::Drop);
        let mut resp = query("web.", RecordType::A, false);
        resp[2] |= 0x80;
        assert_eq!(ask_raw(&resp), Outcome::Drop, "responses are not answered");
        // A header claiming a question that is not there.
        let mut cut = query("web.", RecordType::A, false);
        cut.truncate(14);
        let Outcome::Reply { bytes, kind } = ask_raw(&cut) else {
            panic!()
        };
        assert_eq!(kind, Kind::Malformed);
        let m = Message::from_vec(&bytes).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
        assert_eq!(m.metadata.id, 0x4242);
        // Two questions.
        let mut two = Message::from_vec(&query("web.", RecordType::A, false)).unwrap();
        two.add_query(Query::query(
            Name::from_ascii("db.").unwrap(),
            RecordType::A,
        ));
        let Outcome::Reply { kind, .. } = ask_raw(&two.to_vec().unwrap()) else {
            panic!()
        };
        assert_eq!(kind, Kind::Malformed);
    }

    #[test]
    fn failures() {
        let q = query("example.com.", RecordType::A, false);
        let b = failure(&q, ResponseCode::ServFail, Transport::Udp).unwrap();
        let m = Message::from_vec(&b).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        assert_eq!(m.queries.len(), 1);
        assert!(failure(&[0; 3], ResponseCode::Refused, Transport::Udp).is_none());
    }
}
