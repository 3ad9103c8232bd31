//! Where outgoing webhooks may go: URL validation (http only for now) and
//! the address rules. By default loopback, link-local, private (RFC 1918,
//! ULA), CGNAT, broadcast and unspecified addresses are refused; the
//! `webhook_allowed_hosts` setting lists host names, addresses and CIDR
//! networks that are allowed anyway. The check is made on every resolved
//! address at connect time, and the connection goes to a checked address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A parsed `http://host[:port]/path?query` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
}

/// Parses and validates a webhook URL.
pub fn parse_url(url: &str) -> Result<Target, String> {
    let url = url.trim();
    if url.len() > 2048 {
        return Err("is longer than 2048 characters".into());
    }
    let rest = if let Some(rest) = strip_prefix_ci(url, "http://") {
        rest
    } else if strip_prefix_ci(url, "https://").is_some() {
        return Err("https:// webhooks are not supported yet; use http://".into());
    } else {
        return Err("must be an http:// URL".into());
    };
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = path.split('#').next().unwrap_or("/");
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    if authority.contains('@') {
        return Err("may not contain credentials".into());
    }
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let (host, after) = inner.split_once(']').ok_or("has an unclosed '['")?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| "has an invalid port")?,
            None if after.is_empty() => 80,
            None => return Err("has an invalid host".into()),
        };
        (host.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, p)) => (
                host.to_string(),
                p.parse().map_err(|_| "has an invalid port")?,
            ),
            None => (authority.to_string(), 80),
        }
    };
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'))
    {
        return Err("has an invalid host".into());
    }
    if port == 0 {
        return Err("has an invalid port".into());
    }
    if path.chars().any(|c| c.is_ascii_control() || c == ' ') {
        return Err("has an invalid path".into());
    }
    Ok(Target {
        host: host.to_ascii_lowercase(),
        port,
        path,
    })
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Whether `ip` is in a range refused by default.
pub fn is_restricted(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => restricted_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => restricted_v4(v4),
            None => restricted_v6(v6),
        },
    }
}

fn restricted_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64)
}

fn restricted_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
}

/// Whether `ip` is inside `network/prefix`.
fn in_network(ip: IpAddr, network: IpAddr, prefix: u32) -> bool {
    match (ip, network) {
        (IpAddr::V4(a), IpAddr::V4(n)) if prefix <= 32 => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            (u32::from(a) & mask) == (u32::from(n) & mask)
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if prefix <= 128 => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            (u128::from(a) & mask) == (u128::from(n) & mask)
        }
        _ => false,
    }
}

/// Whether an `webhook_allowed_hosts` entry lets `host` at `ip` through.
fn entry_allows(entry: &str, host: &str, ip: IpAddr) -> bool {
    let entry = entry.trim();
    if entry.eq_ignore_ascii_case(host) {
        return true;
    }
    if let Some((network, prefix)) = entry.split_once('/') {
        return match (network.parse::<IpAddr>(), prefix.parse::<u32>()) {
            (Ok(network), Ok(prefix)) => in_network(ip, network, prefix),
            _ => false,
        };
    }
    entry.parse::<IpAddr>().is_ok_and(|a| a == ip)
}

/// `Ok` if a webhook for `host` may connect to `ip`; else why not.
pub fn check(allowed: &[String], host: &str, ip: IpAddr) -> Result<(), String> {
    if allowed.iter().any(|e| entry_allows(e, host, ip)) || !is_restricted(ip) {
        Ok(())
    } else {
        Err(format!(
            "address {ip} is loopback, private or otherwise internal (see webhook_allowed_hosts)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_http_urls() {
        let t = parse_url("http://Example.com:8080/hook?x=1#frag").unwrap();
        assert_eq!(
            t,
            Target {
                host: "example.com".into(),
                port: 8080,
                path: "/hook?x=1".into()
            }
        );
        assert_eq!(parse_url("http://a.b").unwrap().path, "/");
        assert_eq!(parse_url("http://[::1]:9/x").unwrap().host, "::1");
        assert!(parse_url("ftp://a.b/").is_err());
        assert!(parse_url("https://a.b/").unwrap_err().contains("https"));
        assert!(parse_url("http://u:p@a.b/").is_err());
        assert!(parse_url("http://:80/").is_err());
        assert!(parse_url("http://a.b:0/").is_err());
        assert!(parse_url("http://a b/").is_err());
    }

    #[test]
    fn default_refuses_internal_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(check(&[], "h", ip).is_err(), "{ip}");
        }
        assert!(check(&[], "h", "93.184.216.34".parse().unwrap()).is_ok());
        assert!(check(&[], "h", "2606:2800::1".parse().unwrap()).is_ok());
    }

    #[test]
    fn allow_list_by_host_address_and_network() {
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(check(&["127.0.0.1".into()], "x", local).is_ok());
        assert!(check(&["127.0.0.0/8".into()], "x", local).is_ok());
        assert!(check(&["localhost".into()], "localhost", local).is_ok());
        assert!(check(&["10.0.0.0/8".into()], "x", local).is_err());
        assert!(check(&["fd00::/8".into()], "x", "fd00::5".parse().unwrap()).is_ok());
    }
}
