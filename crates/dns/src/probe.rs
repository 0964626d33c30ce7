//! Asking a resolver from code (attach waiting for the local resolver, the benchmark): a query's
//! bytes and the addresses in a response. Pure.

use std::net::IpAddr;

pub use hickory_proto::op::ResponseCode;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};

/// An A (or AAAA, `v6`) query for `name` (absolute), with id `id`; None for a name that is not one.
pub fn query(id: u16, name: &str, v6: bool) -> Option<Vec<u8>> {
    let mut n = Name::from_ascii(name).ok()?;
    n.set_fqdn(true);
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    let t = if v6 { RecordType::AAAA } else { RecordType::A };
    m.add_query(Query::query(n, t));
    m.to_vec().ok()
}

/// What a response to query `id` says: its code and addresses; None when it is not a response to
/// that query.
pub fn addresses(id: u16, response: &[u8]) -> Option<(ResponseCode, Vec<IpAddr>)> {
    let m = Message::from_vec(response).ok()?;
    if m.metadata.id != id || m.metadata.message_type != MessageType::Response {
        return None;
    }
    let addrs = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    Some((m.metadata.response_code, addrs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::{answer, Outcome, Transport};
    use crate::names::tests::sample;

    #[test]
    fn asks_and_reads() {
        let q = query(7, "svc.a.weft.internal", false).unwrap();
        let Outcome::Reply { bytes, .. } =
            answer(&sample(), &["a".into()], &q, Transport::Udp, 1, false)
        else {
            panic!()
        };
        let (code, addrs) = addresses(7, &bytes).unwrap();
        assert_eq!(code, ResponseCode::NoError);
        assert_eq!(addrs.len(), 3);
        assert_eq!(addrs[0].to_string(), "10.1.0.5");
        assert!(addresses(8, &bytes).is_none(), "another query's response");
        assert!(addresses(7, &q).is_none(), "a query is no response");
        assert!(query(1, "a..b", false).is_none());
    }
}
