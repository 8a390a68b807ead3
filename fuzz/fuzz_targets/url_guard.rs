//! The URL checks must never panic, and whatever they accept must hold the invariants:
//! https only, no userinfo, default port, and no internal IP literal as host.
#![no_main]

use chat::safety::ssrf::{UrlPolicy, parse::parse, ranges};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(url) = parse(s, &UrlPolicy::default()) {
        assert_eq!(url.scheme(), "https");
        assert!(url.username().is_empty() && url.password().is_none());
        assert!(url.port().is_none());
        match url.host() {
            Some(url::Host::Ipv4(ip)) => assert!(!ranges::is_forbidden_v4(ip)),
            Some(url::Host::Ipv6(ip)) => assert!(!ranges::is_forbidden_v6(ip)),
            _ => {}
        }
    }
});
