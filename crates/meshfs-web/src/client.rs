//! `client_key`: the address a web client is counted by, for failed logins ([`Throttle`])
//! and live sessions ([`Sessions`]).
//!
//! An IPv6 host usually owns a whole /64 (SLAAC, privacy addresses): keyed by its full address,
//! it could take a fresh one for each guess and never be locked out. So an IPv6 client counts
//! by its /64, and an IPv4-mapped IPv6 address (a dual-stack listener) as the IPv4 address.
//!
//! [`Throttle`]: crate::throttle::Throttle
//! [`Sessions`]: crate::session::Sessions

use std::net::{IpAddr, Ipv6Addr};

/// The key `ip` is counted under: an IPv4 address itself, an IPv6 address's /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> String {
        client_key(s.parse().unwrap()).to_string()
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(key("10.1.2.3"), "10.1.2.3");
        assert_eq!(key("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.168.1.7"), "192.168.1.7");
        assert_eq!(key("::1"), "::");
    }
}
