//! The checks that need no network: length, characters, scheme, userinfo, host form and port.
//! Hosts are parsed the WHATWG way (the `url` crate): IDNA to ASCII, and every numeric IPv4
//! spelling (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`, full-width digits and dots) becomes
//! the address it means, which is then checked like any other address.

use url::{Host, Url};

use crate::safety::ssrf::{UrlError, UrlPolicy, ranges};

/// Names that are never public, refused before any lookup (`localhost` is resolved by the
/// system to loopback; the others are site-local by definition).
const LOCAL_SUFFIXES: [&str; 7] = ["localhost", "local", "internal", "localdomain", "home.arpa", "intranet", "lan"];

pub fn parse(raw: &str, policy: &UrlPolicy) -> Result<Url, UrlError> {
    if raw.len() > policy.max_len {
        return Err(UrlError::TooLong);
    }
    // WHATWG parsing silently drops tabs and newlines and treats `\` as `/`, so a URL that looks
    // like one host to a reader can be another to the parser: refuse such input outright.
    if raw.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\') {
        return Err(UrlError::Syntax);
    }
    let scheme_end = raw.find(':').ok_or(UrlError::Syntax)?;
    let scheme = raw[..scheme_end].to_ascii_lowercase();
    match scheme.as_str() {
        "https" => {}
        "http" if policy.allow_http => {}
        _ => return Err(UrlError::Scheme),
    }
    if raw_authority(&raw[scheme_end + 1..]).contains('@') {
        return Err(UrlError::Userinfo);
    }
    let mut url = Url::parse(raw).map_err(|_| UrlError::Syntax)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::Userinfo);
    }
    match url.host() {
        None => return Err(UrlError::Syntax),
        Some(Host::Ipv4(ip)) if ranges::is_forbidden_v4(ip) => return Err(UrlError::Forbidden),
        Some(Host::Ipv6(ip)) if ranges::is_forbidden_v6(ip) => return Err(UrlError::Forbidden),
        Some(Host::Domain(d)) => check_domain(d)?,
        Some(_) => {}
    }
    if let Some(port) = url.port()
        && !policy.extra_ports.contains(&port)
    {
        return Err(UrlError::Port);
    }
    // The fragment is never sent; drop it so the checked URL is what goes on the wire.
    url.set_fragment(None);
    Ok(url)
}

/// The authority as written: after `scheme:` and any slashes, up to the path, query or fragment.
fn raw_authority(after_scheme: &str) -> &str {
    let s = after_scheme.trim_start_matches('/');
    let end = s.find(['/', '?', '#']).unwrap_or(s.len());
    &s[..end]
}

/// `d` is the IDNA-processed (ASCII, lowercase) name the `url` crate produced.
fn check_domain(d: &str) -> Result<(), UrlError> {
    let name = d.strip_suffix('.').unwrap_or(d);
    if name.is_empty() || name.len() > 253 || !name.is_ascii() {
        return Err(UrlError::Syntax);
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.iter().any(|l| l.is_empty() || l.len() > 63) {
        return Err(UrlError::Syntax);
    }
    // A single label is completed by the resolver's search domains into an internal name.
    if labels.len() < 2 {
        return Err(UrlError::Forbidden);
    }
    if LOCAL_SUFFIXES.iter().any(|s| name == *s || name.ends_with(&format!(".{s}"))) {
        return Err(UrlError::Forbidden);
    }
    // The last label of a public name is never all digits (that would have parsed as IPv4).
    if labels.last().is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit())) {
        return Err(UrlError::Syntax);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn numeric_hosts_become_the_address_they_mean() {
        let p = UrlPolicy::default();
        for raw in [
            "https://2130706433/",
            "https://0x7f.1/",
            "https://0177.0.0.1/",
            "https://127.1/",
            "https://１２７．０．０．１/",
        ] {
            assert_eq!(parse(raw, &p), Err(UrlError::Forbidden), "{raw}");
        }
        assert_eq!(parse("https://134744072/", &p).unwrap().as_str(), "https://8.8.8.8/");
    }

    proptest! {
        #[test]
        fn no_string_panics_the_url_parser(s in any::<String>()) {
            let _ = parse(&s, &UrlPolicy::default());
        }

        #[test]
        fn no_url_shaped_string_panics_the_url_parser(host in "[a-zA-Z0-9.:%\\[\\]@\u{ff10}-\u{ff19}\u{3002}-]{0,40}", path in "[ -~]{0,20}") {
            let p = UrlPolicy { allow_http: true, ..UrlPolicy::default() };
            if let Ok(url) = parse(&format!("https://{host}/{path}"), &p) {
                // Whatever passes has no userinfo, an allowed port, and a host that is not internal.
                prop_assert!(url.username().is_empty() && url.password().is_none());
                prop_assert!(url.port().is_none());
                if let Some(Host::Ipv4(ip)) = url.host() { prop_assert!(!ranges::is_forbidden_v4(ip)); }
                if let Some(Host::Ipv6(ip)) = url.host() { prop_assert!(!ranges::is_forbidden_v6(ip)); }
            }
        }
    }
}
