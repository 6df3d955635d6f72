//! The crate's one rule for "this machine": where plain (unencrypted) traffic is allowed — an
//! `http://` token URL, PostgreSQL's `sslmode=disable`, MySQL's `ssl_mode=disabled`.
//!
//! The rule looks only at a host that a URI parser has already taken out of its URI, never at
//! the URI's text, so `http://127.0.0.1@evil.example/` (userinfo) or `127.0.0.1.evil.example`
//! (a domain name that starts like an address) are not loopback.

use std::net::IpAddr;

/// Whether `host` — a host as a URI parser returns it: a name, an IPv4 address, or an IPv6
/// address with or without its brackets — is this machine: the name `localhost` (any case,
/// with or without the root's trailing dot), an address in `127.0.0.0/8`, or `::1` (also as
/// the IPv4-mapped `::ffff:127.x.y.z`).
pub fn is_loopback_host(host: &str) -> bool {
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse::<IpAddr>()
        .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn loopback_names_and_addresses() {
        for host in [
            "localhost",
            "LOCALHOST",
            "localhost.",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "127.anything.example",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "evil-localhost",
            "10.0.0.1",
            "0.0.0.0",
            "::",
            "[::2]",
            "",
            "127.0.0.1:80",
            "[::1",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
