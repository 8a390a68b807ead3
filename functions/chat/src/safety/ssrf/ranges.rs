//! Which addresses a user-given URL may never reach: internal, special-purpose and
//! non-global ranges, including IPv4 addresses embedded in IPv6 (mapped, compatible, NAT64,
//! 6to4), which are re-checked as IPv4.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// (network, prefix length)
const V4_BLOCKED: [(u32, u8); 15] = [
    (0x0000_0000, 8),  // 0.0.0.0/8 "this network" (0.0.0.0 reaches the local host)
    (0x0A00_0000, 8),  // 10.0.0.0/8 private
    (0x6440_0000, 10), // 100.64.0.0/10 carrier-grade NAT
    (0x7F00_0000, 8),  // 127.0.0.0/8 loopback
    (0xA9FE_0000, 16), // 169.254.0.0/16 link-local, cloud metadata (169.254.169.254)
    (0xAC10_0000, 12), // 172.16.0.0/12 private
    (0xC000_0000, 24), // 192.0.0.0/24 IETF protocol assignments
    (0xC000_0200, 24), // 192.0.2.0/24 TEST-NET-1
    (0xC058_6300, 24), // 192.88.99.0/24 6to4 relay anycast
    (0xC0A8_0000, 16), // 192.168.0.0/16 private
    (0xC612_0000, 15), // 198.18.0.0/15 benchmarking
    (0xC633_6400, 24), // 198.51.100.0/24 TEST-NET-2
    (0xCB00_7100, 24), // 203.0.113.0/24 TEST-NET-3
    (0xE000_0000, 4),  // 224.0.0.0/4 multicast
    (0xF000_0000, 4),  // 240.0.0.0/4 reserved, incl. 255.255.255.255 broadcast
];

const V6_BLOCKED: [(u128, u8); 9] = [
    (0, 128),                // :: unspecified
    (1, 128),                // ::1 loopback
    (0xfc00 << 112, 7),      // fc00::/7 unique local (incl. fd00:ec2::254)
    (0xfe80 << 112, 10),     // fe80::/10 link-local
    (0xfec0 << 112, 10),     // fec0::/10 site-local (deprecated)
    (0xff00 << 112, 8),      // ff00::/8 multicast
    (0x0100 << 112, 64),     // 100::/64 discard-only
    (0x2001_0000 << 96, 32), // 2001::/32 Teredo (tunnels to any IPv4)
    (0x2001_0db8 << 96, 32), // 2001:db8::/32 documentation
];

fn in_v4(addr: u32, (net, len): (u32, u8)) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
    addr & mask == net
}

fn in_v6(addr: u128, (net, len): (u128, u8)) -> bool {
    let mask = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) };
    addr & mask == net
}

pub fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    let a = u32::from(ip);
    V4_BLOCKED.iter().any(|&b| in_v4(a, b))
}

/// The IPv4 addresses an IPv6 address carries, by the translation scheme its prefix names.
/// `None` if it is no such address.
fn embedded_v4(a: u128) -> Option<Vec<Ipv4Addr>> {
    let low32 = |x: u128| Ipv4Addr::from((x & 0xffff_ffff) as u32);
    if in_v6(a, (0xffff << 32, 96)) // ::ffff:0:0/96 IPv4-mapped
        || in_v6(a, (0, 96)) // ::/96 IPv4-compatible (deprecated)
        || in_v6(a, (0xffff << 48, 96)) // ::ffff:0:0:0/96 IPv4-translated (SIIT)
        || in_v6(a, (0x0064_ff9b << 96, 96))
    // 64:ff9b::/96 NAT64 well-known prefix
    {
        return Some(vec![low32(a)]);
    }
    if in_v6(a, (0x0064_ff9b_0001 << 80, 48)) {
        // 64:ff9b:1::/48 local-use NAT64 (RFC 8215): the operator picks the prefix length, so
        // check the /48 layout (bits 48..64 and 72..88 around the zero "u" octet) and the /96
        // layout; either being internal, or a non-zero u octet, refuses the address.
        let hi = ((a >> 64) & 0xffff) as u32;
        let lo = ((a >> 40) & 0xffff) as u32;
        let u_octet = (a >> 56) & 0xff;
        let v48 = Ipv4Addr::from((hi << 16) | lo);
        let mut out = vec![v48, low32(a)];
        if u_octet != 0 {
            out.push(Ipv4Addr::UNSPECIFIED);
        }
        return Some(out);
    }
    if in_v6(a, (0x2002 << 112, 16)) {
        // 2002::/16 6to4: the IPv4 address is bits 16..48.
        return Some(vec![Ipv4Addr::from(((a >> 80) & 0xffff_ffff) as u32)]);
    }
    None
}

pub fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    let a = u128::from(ip);
    if V6_BLOCKED.iter().any(|&b| in_v6(a, b)) {
        return true;
    }
    if let Some(v4s) = embedded_v4(a) {
        return v4s.into_iter().any(is_forbidden_v4);
    }
    // Fail closed: outside the translation prefixes, only global unicast (2000::/3) is public.
    !in_v6(a, (0x2000 << 112, 3))
}

pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => is_forbidden_v6(v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_listed_range_is_refused_at_both_ends() {
        let edges = [
            "0.0.0.0",
            "0.255.255.255",
            "10.0.0.0",
            "10.255.255.255",
            "100.64.0.0",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.255.255",
            "169.254.0.0",
            "169.254.169.254",
            "172.16.0.0",
            "172.31.255.255",
            "192.0.0.0",
            "192.0.0.255",
            "192.0.2.0",
            "192.0.2.255",
            "192.88.99.0",
            "192.88.99.255",
            "192.168.0.0",
            "192.168.255.255",
            "198.18.0.0",
            "198.19.255.255",
            "198.51.100.0",
            "198.51.100.255",
            "203.0.113.0",
            "203.0.113.255",
            "224.0.0.0",
            "239.255.255.255",
            "240.0.0.0",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::",
            "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "fd00:ec2::254",
            "fe80::1",
            "febf:ffff::1",
            "fec0::1",
            "feff::1",
            "ff02::1",
            "ff0e::1",
            "100::",
            "100::ffff:ffff:ffff:ffff",
            "2001::",
            "2001:0:ffff:ffff:ffff:ffff:ffff:ffff",
            "2001:db8::",
            "2001:db8:ffff::1",
        ];
        for e in edges {
            assert!(is_forbidden(ip(e)), "{e} must be refused");
        }
    }

    #[test]
    fn neighbours_of_the_ranges_are_public() {
        let public = [
            "1.1.1.1",
            "8.8.8.8",
            "11.0.0.0",
            "9.255.255.255",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.0",
            "192.0.3.0",
            "192.88.98.255",
            "192.88.100.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "198.51.99.255",
            "203.0.112.255",
            "203.0.114.0",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "2001:1::1",
            "2a00:1450:4001::1",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:0808:0808::1",
        ];
        for p in public {
            assert!(!is_forbidden(ip(p)), "{p} must be allowed");
        }
    }

    #[test]
    fn embedded_ipv4_is_rechecked() {
        for e in [
            "::ffff:127.0.0.1",
            "::ffff:7f00:1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "::10.1.2.3",
            "::ffff:0:127.0.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::7f00:1",
            "64:ff9b:1:7f00:0:100::",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "2002:c0a8:0101::",
        ] {
            assert!(is_forbidden(ip(e)), "{e} must be refused");
        }
    }

    #[test]
    fn unassigned_ipv6_space_fails_closed() {
        for e in ["4000::1", "1::1", "e000::1", "::2:3:4:5"] {
            assert!(is_forbidden(ip(e)), "{e}");
        }
    }

    proptest! {
        #[test]
        fn mapped_v4_agrees_with_v4(a in any::<u32>()) {
            let v4 = Ipv4Addr::from(a);
            prop_assert_eq!(is_forbidden_v6(v4.to_ipv6_mapped()), is_forbidden_v4(v4));
            prop_assert_eq!(is_forbidden_v6(Ipv6Addr::from(0x0064_ff9b_u128 << 96 | u128::from(a))), is_forbidden_v4(v4));
        }

        #[test]
        fn any_address_is_classified(a in any::<u128>()) {
            let _ = is_forbidden_v6(Ipv6Addr::from(a));
        }
    }
}
