//! weft's nftables rule set, built from the desired state (pure). Two tables, both named
//! [`TABLE`](crate::TABLE):
//!
//! - `bridge weft` keeps each network's gateway off the overlay. Every host's bridge holds the
//!   same gateway address, so ARP and neighbour discovery for it must never cross between hosts,
//!   or a container could learn another host's bridge as its gateway. The rule sits on the
//!   bridge's uplink ports (the kernel's `wvx*` and the engine's `wtp*` alike), where one filter
//!   serves both datapaths, and covers what the bridge sends itself (its requests from the
//!   gateway address, whose sender address would overwrite remote containers' gateway entries)
//!   as well as what containers send. The engine and the kernel's VXLAN proxy only ever answer
//!   for endpoints, so dropping at the port is the whole job.
//! - `inet weft` routes: masquerades egress (like Docker's gateway bridge), keeps networks apart
//!   when the host routes (a container's default route goes to its host, which has a leg in every
//!   network it carries), shuts `--no-egress` networks in, and forwards published ports (DNAT in
//!   prerouting for others, in output for the host itself).
//!
//! The batch replaces both tables in one transaction (`add`, `delete`, `add` again: the first add
//! makes the delete safe when the table is absent), so that nothing outside them is touched and
//! no packet meets half a rule set.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::IpAddr;

use nftables::batch::Batch;
use nftables::expr::{
    Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression, Payload, PayloadBase,
    PayloadField, PayloadRaw, Prefix, SetItem, CT,
};
use nftables::schema::{Chain, NfListObject, Nftables, Rule, Table};
use nftables::stmt::{AnonymousCounter, Counter, Match, NATFamily, Operator, Statement, NAT};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use weft_model::Proto;
use weft_reconcile::{HostFirewall, NetFirewall, PublishedPort};

use crate::TABLE;

/// Chain priorities: nftables' named ones (`filter`, `dstnat`, `srcnat`).
const PRIO_RAW: i32 = -300;
const PRIO_FILTER: i32 = 0;
const PRIO_DSTNAT: i32 = -100;
const PRIO_SRCNAT: i32 = 100;

type Expr = Expression<'static>;
type Stmt = Statement<'static>;

const LOOPBACK4: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 0, 0, 0);

fn s(x: impl ToString) -> Expr {
    Expression::String(Cow::Owned(x.to_string()))
}

fn meta(key: MetaKey) -> Expr {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn field(protocol: &'static str, name: &'static str) -> Expr {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: protocol.into(),
            field: name.into(),
        },
    )))
}

fn prefix(addr: IpAddr, len: u8) -> Expr {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(s(addr)),
        len: len.into(),
    }))
}

fn set(items: Vec<Expr>) -> Expr {
    Expression::Named(NamedExpression::Set(
        items.into_iter().map(SetItem::Element).collect(),
    ))
}

fn is(left: Expr, right: Expr) -> Stmt {
    Statement::Match(Match {
        left,
        right,
        op: Operator::EQ,
    })
}

fn is_not(left: Expr, right: Expr) -> Stmt {
    Statement::Match(Match {
        left,
        right,
        op: Operator::NEQ,
    })
}

fn drop() -> Stmt {
    Statement::Drop(None)
}

/// Counted, so that `nft list table bridge weft` shows the gateway's traffic being kept home.
fn counter() -> Stmt {
    Statement::Counter(Counter::Anonymous(Some(AnonymousCounter::default())))
}

/// Destined to an address of this host (`fib daddr type local`).
fn to_local_address() -> Stmt {
    is(
        Expression::Named(NamedExpression::Fib(Fib {
            result: FibResult::Type,
            flags: HashSet::from([FibFlag::Daddr]),
        })),
        s("local"),
    )
}

/// The flow was translated by a DNAT (`ct status dnat`): a published port's.
fn ct_status_dnat() -> Stmt {
    Statement::Match(Match {
        left: Expression::Named(NamedExpression::CT(CT {
            key: "status".into(),
            family: None,
            dir: None,
        })),
        right: s("dnat"),
        op: Operator::IN,
    })
}

struct Tables {
    batch: Batch<'static>,
}

impl Tables {
    fn chain(
        &mut self,
        family: NfFamily,
        name: &'static str,
        kind: NfChainType,
        hook: NfHook,
        prio: i32,
    ) {
        self.batch.add(NfListObject::Chain(Chain {
            family,
            table: TABLE.into(),
            name: name.into(),
            _type: Some(kind),
            hook: Some(hook),
            prio: Some(prio),
            policy: Some(NfChainPolicy::Accept),
            ..Default::default()
        }));
    }

    fn rule(&mut self, family: NfFamily, chain: &'static str, comment: String, expr: Vec<Stmt>) {
        self.batch.add(NfListObject::Rule(Rule {
            family,
            table: TABLE.into(),
            chain: chain.into(),
            expr: expr.into(),
            comment: Some(comment.into()),
            ..Default::default()
        }));
    }
}

fn table(family: NfFamily) -> NfListObject<'static> {
    NfListObject::Table(Table {
        family,
        name: TABLE.into(),
        handle: None,
    })
}

/// The batch that makes weft's tables exactly `fw` (and removes them when `fw` has no network).
pub fn ruleset(fw: &HostFirewall) -> Nftables<'static> {
    let mut t = Tables {
        batch: Batch::new(),
    };
    for family in [NfFamily::Bridge, NfFamily::INet] {
        t.batch.add(table(family));
        t.batch.delete(table(family));
    }
    if fw.networks.is_empty() {
        return t.batch.to_nftables();
    }
    bridge_table(&mut t, fw);
    inet_table(&mut t, fw);
    t.batch.to_nftables()
}

fn bridge_table(t: &mut Tables, fw: &HostFirewall) {
    let f = NfFamily::Bridge;
    t.batch.add(table(f));
    t.chain(
        f,
        "prerouting",
        NfChainType::Filter,
        NfHook::Prerouting,
        PRIO_FILTER,
    );
    t.chain(
        f,
        "postrouting",
        NfChainType::Filter,
        NfHook::Postrouting,
        PRIO_FILTER,
    );
    for (name, n) in &fw.networks {
        let uplinks = || set(n.uplinks.iter().map(s).collect());
        for (chain, port) in [
            ("prerouting", MetaKey::Iifname),
            ("postrouting", MetaKey::Oifname),
        ] {
            let comment = format!("weft: the gateway of network {name} stays on this host");
            for side in ["saddr ip", "daddr ip"] {
                t.rule(
                    f,
                    chain,
                    comment.clone(),
                    vec![
                        is(meta(port), uplinks()),
                        is(field("arp", side), s(n.gateway4)),
                        counter(),
                        drop(),
                    ],
                );
            }
            if let Some(g6) = n.gateway6 {
                // Solicitations and advertisements whose target is the gateway (nft 1.0.6 has
                // no name for the target field: it is the 128 bits after the first 64 of ICMPv6).
                t.rule(
                    f,
                    chain,
                    comment.clone(),
                    vec![
                        is(meta(port), uplinks()),
                        is(
                            field("icmpv6", "type"),
                            set(vec![s("nd-neighbor-solicit"), s("nd-neighbor-advert")]),
                        ),
                        is(
                            Expression::Named(NamedExpression::Payload(Payload::PayloadRaw(
                                PayloadRaw {
                                    base: PayloadBase::TH,
                                    offset: 64,
                                    len: 128,
                                },
                            ))),
                            s(format!("0x{:032x}", u128::from(g6))),
                        ),
                        counter(),
                        drop(),
                    ],
                );
                // Sent from the gateway: a solicitation carries its sender's link-layer address,
                // which would overwrite a remote container's entry for its own gateway.
                t.rule(
                    f,
                    chain,
                    comment.clone(),
                    vec![
                        is(meta(port), uplinks()),
                        is(field("ip6", "saddr"), s(g6)),
                        is(
                            field("icmpv6", "type"),
                            set(vec![s("nd-neighbor-solicit"), s("nd-neighbor-advert")]),
                        ),
                        counter(),
                        drop(),
                    ],
                );
            }
        }
    }
}

fn inet_table(t: &mut Tables, fw: &HostFirewall) {
    let f = NfFamily::INet;
    t.batch.add(table(f));
    t.chain(
        f,
        "forward",
        NfChainType::Filter,
        NfHook::Forward,
        PRIO_FILTER,
    );
    t.chain(
        f,
        "prerouting",
        NfChainType::NAT,
        NfHook::Prerouting,
        PRIO_DSTNAT,
    );
    t.chain(f, "output", NfChainType::NAT, NfHook::Output, PRIO_DSTNAT);
    t.chain(
        f,
        "postrouting",
        NfChainType::NAT,
        NfHook::Postrouting,
        PRIO_SRCNAT,
    );
    t.chain(f, "raw", NfChainType::Filter, NfHook::Prerouting, PRIO_RAW);
    if fw.networks.values().any(|n| !n.published.is_empty()) {
        // Bridges with published ports route loopback addresses (`route_localnet`, so the host
        // reaches a port at 127.0.0.1), which would also let a container address the host's
        // loopback services: nothing addressed to 127.0.0.0/8 may come in from a bridge. Before
        // connection tracking, so a reply to a translated flow (addressed to the gateway until
        // it is untranslated) is not hit.
        t.rule(
            f,
            "raw",
            "weft: no loopback destination arrives from a bridge".into(),
            vec![
                is(
                    meta(MetaKey::Iifname),
                    s(format!("{}*", weft_reconcile::names::BRIDGE_PREFIX)),
                ),
                is(field("ip", "daddr"), prefix(LOOPBACK4.into(), 8)),
                counter(),
                drop(),
            ],
        );
        // A published port is offered on the host's addresses to everyone, containers of other
        // networks on this host included: translated flows pass before the isolation rules.
        t.rule(
            f,
            "forward",
            "weft: published ports are reachable from every network".into(),
            vec![ct_status_dnat(), Statement::Accept(None)],
        );
    }
    for (name, n) in &fw.networks {
        let br = || s(&n.bridge);
        t.rule(
            f,
            "forward",
            format!("weft: network {name} stays apart from other networks"),
            vec![
                is(meta(MetaKey::Iifname), br()),
                is(
                    meta(MetaKey::Oifname),
                    s(format!("{}*", weft_reconcile::names::BRIDGE_PREFIX)),
                ),
                is_not(meta(MetaKey::Oifname), br()),
                drop(),
            ],
        );
        if n.egress {
            masquerade(t, name, n);
        } else {
            for (a, b) in [
                (MetaKey::Iifname, MetaKey::Oifname),
                (MetaKey::Oifname, MetaKey::Iifname),
            ] {
                t.rule(
                    f,
                    "forward",
                    format!("weft: network {name} has no egress"),
                    vec![is(meta(a), br()), is_not(meta(b), br()), drop()],
                );
            }
        }
        for p in &n.published {
            publish(t, name, p);
        }
        if !n.published.is_empty() {
            // Hairpin: a container calling a published port of its own host is answered by a
            // neighbour on the same bridge, which would reply directly; masquerading makes the
            // reply come back through the host to be translated.
            t.rule(
                f,
                "postrouting",
                format!("weft: published ports of network {name} reached from inside it"),
                vec![
                    is(meta(MetaKey::Iifname), br()),
                    is(meta(MetaKey::Oifname), br()),
                    ct_status_dnat(),
                    Statement::Masquerade(None),
                ],
            );
            // The host calling 127.0.0.1:PORT: a container cannot answer a loopback source,
            // so the flow leaves with the gateway's address.
            t.rule(
                f,
                "postrouting",
                format!("weft: published ports of network {name} reached at 127.0.0.1"),
                vec![
                    is(field("ip", "saddr"), prefix(LOOPBACK4.into(), 8)),
                    is(meta(MetaKey::Oifname), br()),
                    ct_status_dnat(),
                    Statement::Masquerade(None),
                ],
            );
        }
    }
}

fn masquerade(t: &mut Tables, name: &str, n: &NetFirewall) {
    let mut subnets = vec![(
        "ip",
        IpAddr::V4(n.subnet4.network()),
        n.subnet4.prefix_len(),
    )];
    if let Some(s6) = n.subnet6 {
        subnets.push(("ip6", IpAddr::V6(s6.network()), s6.prefix_len()));
    }
    for (proto, addr, len) in subnets {
        t.rule(
            NfFamily::INet,
            "postrouting",
            format!("weft: egress of network {name}"),
            vec![
                is(field(proto, "saddr"), prefix(addr, len)),
                is_not(meta(MetaKey::Oifname), s(&n.bridge)),
                Statement::Masquerade(None),
            ],
        );
    }
}

fn publish(t: &mut Tables, name: &str, p: &PublishedPort) {
    let proto = match p.publish.proto {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    };
    let mut targets = vec![(NATFamily::IP, "ip", IpAddr::V4(p.ipv4))];
    if let Some(a) = p.ipv6 {
        targets.push((NATFamily::IP6, "ip6", IpAddr::V6(a)));
    }
    for (family, l3, addr) in targets {
        let nfproto = if family == NATFamily::IP {
            "ipv4"
        } else {
            "ipv6"
        };
        for chain in ["prerouting", "output"] {
            let mut expr = vec![is(meta(MetaKey::Nfproto), s(nfproto)), to_local_address()];
            if chain == "output" && family == NATFamily::IP6 {
                // IPv6 has no `route_localnet`: ::1 can never be routed to a bridge, so the host
                // reaches an IPv6 port at its other addresses. (127.0.0.1 works: see `raw`.)
                expr.push(is_not(field(l3, "daddr"), s("::1")));
            }
            expr.push(is(
                field(proto, "dport"),
                Expression::Number(p.publish.host_port.into()),
            ));
            expr.push(Statement::DNAT(Some(NAT {
                addr: Some(s(addr)),
                family: Some(family),
                port: Some(Expression::Number(p.publish.port.into())),
                flags: None,
            })));
            t.rule(
                NfFamily::INet,
                chain,
                format!("weft: {} published by network {name}", p.publish),
                expr,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_reconcile::NetFirewall;

    fn fw(egress: bool, ports: &[&str]) -> HostFirewall {
        let mut fw = HostFirewall::default();
        fw.networks.insert(
            "prod".into(),
            NetFirewall {
                bridge: "wbr10".into(),
                uplinks: vec!["wvx10".into(), "wtp10".into()],
                subnet4: "10.0.0.0/24".parse().unwrap(),
                subnet6: Some("fd00::/64".parse().unwrap()),
                gateway4: "10.0.0.1".parse().unwrap(),
                gateway6: Some("fd00::1".parse().unwrap()),
                egress,
                published: ports
                    .iter()
                    .map(|p| PublishedPort {
                        publish: p.parse().unwrap(),
                        ipv4: "10.0.0.5".parse().unwrap(),
                        ipv6: None,
                    })
                    .collect(),
            },
        );
        fw
    }

    /// The batch as nft's JSON, one line per command, for readable assertions.
    fn lines(fw: &HostFirewall) -> Vec<String> {
        let v = serde_json::to_value(ruleset(fw)).unwrap();
        v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.to_string())
            .collect()
    }

    fn rules_with<'a>(lines: &'a [String], needle: &str) -> Vec<&'a String> {
        lines.iter().filter(|l| l.contains(needle)).collect()
    }

    #[test]
    fn empty_removes_only_weft_tables() {
        let l = lines(&HostFirewall::default());
        assert_eq!(
            l,
            vec![
                r#"{"add":{"table":{"family":"bridge","name":"weft"}}}"#,
                r#"{"delete":{"table":{"family":"bridge","name":"weft"}}}"#,
                r#"{"add":{"table":{"family":"inet","name":"weft"}}}"#,
                r#"{"delete":{"table":{"family":"inet","name":"weft"}}}"#,
            ]
        );
    }

    #[test]
    fn gateway_stays_on_the_host() {
        let l = lines(&fw(true, &[]));
        let gw = rules_with(&l, "the gateway of network prod");
        // ARP sender and target, ND for and from the gateway, each in and out of the uplinks.
        assert_eq!(gw.len(), 8);
        for r in &gw {
            assert!(r.contains(r#""set":["wvx10","wtp10"]"#), "{r}");
            assert!(r.contains(r#"{"drop":null}"#), "{r}");
        }
        assert_eq!(rules_with(&l, r#""right":"10.0.0.1""#).len(), 4);
        assert_eq!(
            rules_with(&l, "0xfd000000000000000000000000000001").len(),
            2
        );
        assert_eq!(rules_with(&l, r#""right":"fd00::1""#).len(), 2);
        assert_eq!(
            rules_with(&l, r#""key":"iifname""#)
                .iter()
                .filter(|r| r.contains("gateway"))
                .count(),
            4
        );
    }

    #[test]
    fn egress_masquerades_both_families() {
        let l = lines(&fw(true, &[]));
        let m = rules_with(&l, "masquerade");
        assert_eq!(m.len(), 2);
        assert!(
            m[0].contains(r#"{"prefix":{"addr":"10.0.0.0","len":24}}"#),
            "{}",
            m[0]
        );
        assert!(
            m[1].contains(r#"{"prefix":{"addr":"fd00::","len":64}}"#),
            "{}",
            m[1]
        );
        assert!(rules_with(&l, "has no egress").is_empty());
        assert_eq!(rules_with(&l, "stays apart").len(), 1);
    }

    #[test]
    fn no_egress_shuts_the_network_in() {
        let l = lines(&fw(false, &[]));
        assert!(rules_with(&l, "masquerade").is_empty());
        let shut = rules_with(&l, "has no egress");
        assert_eq!(shut.len(), 2);
        assert!(shut.iter().all(|r| r.contains(r#""chain":"forward""#)));
    }

    #[test]
    fn published_ports_in_prerouting_and_output() {
        let l = lines(&fw(true, &["8080:80", "5353:53/udp"]));
        let tcp = rules_with(&l, "8080:80/tcp published");
        assert_eq!(tcp.len(), 2, "{tcp:?}");
        assert!(tcp[0].contains(r#""chain":"prerouting""#));
        assert!(tcp[1].contains(r#""chain":"output""#));
        for r in &tcp {
            assert!(
                r.contains(r#"{"dnat":{"addr":"10.0.0.5","family":"ip","port":80}}"#),
                "{r}"
            );
            assert!(
                r.contains(
                    r#"{"payload":{"field":"dport","protocol":"tcp"}},"op":"==","right":8080"#
                ),
                "{r}"
            );
            assert!(r.contains(r#""fib""#), "{r}");
        }
        // The host reaches it at 127.0.0.1 too: no loopback exclusion in output for IPv4…
        assert!(!tcp[1].contains("127.0.0.0"), "{}", tcp[1]);
        let lo = rules_with(&l, "reached at 127.0.0.1");
        assert_eq!(lo.len(), 1);
        assert!(lo[0].contains(r#""chain":"postrouting""#) && lo[0].contains("127.0.0.0"));
        assert!(lo[0].contains("masquerade"), "{}", lo[0]);
        // …and nothing for the loopback comes in from a bridge, before conntrack.
        let guard = rules_with(&l, "no loopback destination");
        assert_eq!(guard.len(), 1);
        assert!(guard[0].contains(r#""chain":"raw""#) && guard[0].contains("drop"));
        assert!(rules_with(&lines(&fw(true, &[])), "no loopback destination").is_empty());
        let open = rules_with(&l, "reachable from every network");
        assert_eq!(open.len(), 1);
        assert!(open[0].contains(r#""chain":"forward""#) && open[0].contains("accept"));
        // Before the isolation rule, which would drop them.
        let pos = |needle: &str| l.iter().position(|r| r.contains(needle)).unwrap();
        assert!(pos("reachable from every network") < pos("stays apart"));
        assert!(rules_with(&lines(&fw(true, &[])), "reachable from every network").is_empty());
        let hairpin = rules_with(&l, "reached from inside it");
        assert_eq!(hairpin.len(), 1);
        assert!(
            hairpin[0].contains(r#""ct":{"key":"status"}},"op":"in","right":"dnat""#),
            "{}",
            hairpin[0]
        );
        let udp = rules_with(&l, "5353:53/udp published");
        assert_eq!(udp.len(), 2);
        assert!(udp[0].contains(r#""protocol":"udp""#), "{}", udp[0]);
    }
}
