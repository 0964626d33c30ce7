//! The port-53 redirect inside a container (as Docker does for 127.0.0.11): the resolver's sockets
//! take a free port on the resolver address, and a NAT rule of weft's own table in the container's
//! namespace sends queries for `RESOLVER:53` there. So port 53 stays free for the container's own
//! programs (a DNS server binding 0.0.0.0:53 works). Pure: the nft scripts as text.

use std::net::Ipv4Addr;

/// weft's table in each container namespace; nothing else is touched.
pub const TABLE: &str = "weft-resolver";

/// Replaces weft's table (if any) with one redirecting `resolver:53` (UDP and TCP) to
/// `resolver:port`, in one transaction.
pub fn install(resolver: Ipv4Addr, port: u16) -> String {
    format!(
        "add table ip {TABLE}\n\
         delete table ip {TABLE}\n\
         table ip {TABLE} {{\n\
         \tchain output {{\n\
         \t\ttype nat hook output priority -100; policy accept;\n\
         \t\tip daddr {resolver} udp dport 53 dnat to {resolver}:{port}\n\
         \t\tip daddr {resolver} tcp dport 53 dnat to {resolver}:{port}\n\
         \t}}\n\
         }}\n"
    )
}

/// Removes weft's table; a no-op script when it is not there.
pub fn remove() -> String {
    format!("add table ip {TABLE}\ndelete table ip {TABLE}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts() {
        let s = install(Ipv4Addr::new(127, 0, 0, 53), 40123);
        assert!(s.starts_with("add table ip weft-resolver\ndelete table ip weft-resolver\n"));
        assert!(s.contains("ip daddr 127.0.0.53 udp dport 53 dnat to 127.0.0.53:40123"));
        assert!(s.contains("ip daddr 127.0.0.53 tcp dport 53 dnat to 127.0.0.53:40123"));
        assert!(s.contains("type nat hook output priority -100"));
        assert_eq!(
            remove(),
            "add table ip weft-resolver\ndelete table ip weft-resolver\n"
        );
    }
}
