//! Table-driven SSRF tests: hostile URLs that must be refused and public URLs that must pass,
//! through the same `UrlGuard` the chat function uses, with DNS replaced by a fixed table.

use baatcheet_tests::resolver::MapResolver;
use chat::safety::ssrf::{UrlError, UrlGuard, UrlPolicy};
use std::sync::Arc;

fn resolver() -> MapResolver {
    MapResolver::new(&[
        // Public names.
        ("images.example.com", &["93.184.215.14"]),
        ("cdn.example.org", &["151.101.1.57", "2a04:4e42::313"]),
        ("v6only.example.net", &["2606:4700:4700::1111"]),
        ("xn--mnchen-3ya.example", &["93.184.215.15"]),
        ("nat64.example.com", &["64:ff9b::808:808"]),
        // Names an attacker controls that point inwards (DNS rebinding-style records).
        ("loopback.attacker.test", &["127.0.0.1"]),
        ("localtest.me", &["127.0.0.1"]),
        ("v6loop.attacker.test", &["::1"]),
        ("metadata.attacker.test", &["169.254.169.254"]),
        ("ec2v6.attacker.test", &["fd00:ec2::254"]),
        ("private.attacker.test", &["10.0.0.7"]),
        ("mixed.attacker.test", &["93.184.215.14", "192.168.1.1"]),
        ("mapped.attacker.test", &["::ffff:127.0.0.1"]),
        ("sixtofour.attacker.test", &["2002:a9fe:a9fe::"]),
        ("cgnat.attacker.test", &["100.100.100.200"]),
        ("zero.attacker.test", &["0.0.0.0"]),
        ("empty.attacker.test", &[]),
    ])
}

fn guard(policy: UrlPolicy) -> UrlGuard {
    UrlGuard::with_resolver(policy, Arc::new(resolver()))
}

/// (url, expected refusal)
const HOSTILE: &[(&str, UrlError)] = &[
    // Loopback in every numeric spelling the WHATWG host parser understands.
    ("https://127.0.0.1/", UrlError::Forbidden),
    ("https://2130706433/", UrlError::Forbidden),
    ("https://0x7f000001/", UrlError::Forbidden),
    ("https://0x7f.0x0.0x0.0x1/", UrlError::Forbidden),
    ("https://0177.0.0.1/", UrlError::Forbidden),
    ("https://0177.1/", UrlError::Forbidden),
    ("https://127.1/", UrlError::Forbidden),
    ("https://127.0.1/", UrlError::Forbidden),
    ("https://017700000001/", UrlError::Forbidden),
    ("https://\u{ff11}\u{ff12}\u{ff17}\u{ff0e}\u{ff10}\u{ff0e}\u{ff10}\u{ff0e}\u{ff11}/", UrlError::Forbidden),
    ("https://127\u{3002}0\u{3002}0\u{3002}1/", UrlError::Forbidden),
    ("https://127%2E0%2E0%2E1/", UrlError::Forbidden),
    ("https://0/", UrlError::Forbidden),
    ("https://0.0.0.0/", UrlError::Forbidden),
    // Cloud metadata endpoints.
    ("https://169.254.169.254/latest/meta-data/", UrlError::Forbidden),
    ("https://2852039166/latest/meta-data/", UrlError::Forbidden),
    ("https://0xa9fea9fe/", UrlError::Forbidden),
    ("https://0251.0376.0251.0376/", UrlError::Forbidden),
    ("https://[fd00:ec2::254]/latest/meta-data/", UrlError::Forbidden),
    ("https://metadata.google.internal/computeMetadata/v1/", UrlError::Forbidden),
    ("https://100.100.100.200/", UrlError::Forbidden),
    // IPv6 forms and mapped / embedded IPv4.
    ("https://[::1]/", UrlError::Forbidden),
    ("https://[::]/", UrlError::Forbidden),
    ("https://[0:0:0:0:0:0:0:1]/", UrlError::Forbidden),
    ("https://[::ffff:127.0.0.1]/", UrlError::Forbidden),
    ("https://[::ffff:7f00:1]/", UrlError::Forbidden),
    ("https://[::ffff:169.254.169.254]/", UrlError::Forbidden),
    ("https://[::127.0.0.1]/", UrlError::Forbidden),
    ("https://[64:ff9b::10.0.0.1]/", UrlError::Forbidden),
    ("https://[64:ff9b:1::a9fe:a9fe]/", UrlError::Forbidden),
    ("https://[2002:7f00:1::]/", UrlError::Forbidden),
    ("https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", UrlError::Forbidden),
    ("https://[fe80::1]/", UrlError::Forbidden),
    ("https://[fe80::1%25eth0]/", UrlError::Syntax),
    ("https://[fc00::1]/", UrlError::Forbidden),
    ("https://[ff02::1]/", UrlError::Forbidden),
    ("https://[2001:db8::1]/", UrlError::Forbidden),
    ("https://10.0.0.1/", UrlError::Forbidden),
    ("https://172.16.5.4/", UrlError::Forbidden),
    ("https://192.168.0.1/", UrlError::Forbidden),
    ("https://198.18.0.1/", UrlError::Forbidden),
    ("https://224.0.0.1/", UrlError::Forbidden),
    ("https://255.255.255.255/", UrlError::Forbidden),
    // Names that resolve inwards, or are local by definition.
    ("https://localhost/", UrlError::Forbidden),
    ("https://LOCALHOST./", UrlError::Forbidden),
    ("https://api.localhost/", UrlError::Forbidden),
    ("https://printer.local/", UrlError::Forbidden),
    ("https://intranet/", UrlError::Forbidden),
    ("https://loopback.attacker.test/", UrlError::Forbidden),
    ("https://localtest.me/", UrlError::Forbidden),
    ("https://v6loop.attacker.test/", UrlError::Forbidden),
    ("https://metadata.attacker.test/", UrlError::Forbidden),
    ("https://ec2v6.attacker.test/", UrlError::Forbidden),
    ("https://private.attacker.test/", UrlError::Forbidden),
    ("https://mixed.attacker.test/", UrlError::Forbidden),
    ("https://mapped.attacker.test/", UrlError::Forbidden),
    ("https://sixtofour.attacker.test/", UrlError::Forbidden),
    ("https://cgnat.attacker.test/", UrlError::Forbidden),
    ("https://zero.attacker.test/", UrlError::Forbidden),
    ("https://LoopBack.Attacker.Test./", UrlError::Forbidden),
    ("https://empty.attacker.test/", UrlError::Unresolvable),
    ("https://nxdomain.attacker.test/", UrlError::Unresolvable),
    // Userinfo tricks.
    ("https://images.example.com@127.0.0.1/", UrlError::Userinfo),
    ("https://user:pass@images.example.com/", UrlError::Userinfo),
    ("https://@images.example.com/", UrlError::Userinfo),
    ("https://images.example.com%40127.0.0.1/", UrlError::Syntax),
    ("https://images.example.com\\@127.0.0.1/", UrlError::Syntax),
    ("https:images.example.com@127.0.0.1", UrlError::Userinfo),
    // Schemes other than https (http is off unless configured).
    ("http://images.example.com/", UrlError::Scheme),
    ("ftp://images.example.com/", UrlError::Scheme),
    ("file:///etc/passwd", UrlError::Scheme),
    ("gopher://127.0.0.1:6379/_INFO", UrlError::Scheme),
    ("dict://127.0.0.1:11211/stat", UrlError::Scheme),
    ("javascript:alert(1)", UrlError::Scheme),
    ("data:text/html,<script>alert(1)</script>", UrlError::Scheme),
    ("ws://images.example.com/", UrlError::Scheme),
    ("//images.example.com/a.png", UrlError::Syntax),
    ("images.example.com/a.png", UrlError::Syntax),
    // Ports other than the default, and parser-confusing input.
    ("https://images.example.com:8443/", UrlError::Port),
    ("https://images.example.com:22/", UrlError::Port),
    ("https://images.example.com:0/", UrlError::Port),
    ("https://images.example.com:99999/", UrlError::Syntax),
    ("https://images.exa\tmple.com/", UrlError::Syntax),
    ("https://images.example.com\n.evil.test/", UrlError::Syntax),
    (" https://images.example.com/", UrlError::Syntax),
    ("https://images.example.com/\u{0}", UrlError::Syntax),
    ("https://1.2.3.4.5/", UrlError::Syntax),
    ("https://[::1/", UrlError::Syntax),
    ("https:///", UrlError::Syntax),
    ("", UrlError::Syntax),
];

#[tokio::test]
async fn hostile_urls_are_refused_for_the_right_reason() {
    assert!(HOSTILE.len() >= 30);
    let g = guard(UrlPolicy::default());
    let mut wrong = Vec::new();
    for (url, expected) in HOSTILE {
        match g.check(url).await {
            Ok(ok) => wrong.push(format!("{url:?} was ACCEPTED as {}", ok.as_str())),
            Err(e) if e != *expected => wrong.push(format!("{url:?}: {e:?}, expected {expected:?}")),
            Err(_) => {}
        }
    }
    assert!(wrong.is_empty(), "{} failure(s):\n{}", wrong.len(), wrong.join("\n"));
}

#[tokio::test]
async fn public_urls_pass_normalised() {
    let g = guard(UrlPolicy::default());
    let cases = [
        ("https://images.example.com/cat.png", "https://images.example.com/cat.png"),
        (
            "HTTPS://IMAGES.EXAMPLE.COM/Cat.PNG?size=large&x=%3Cy%3E",
            "https://images.example.com/Cat.PNG?size=large&x=%3Cy%3E",
        ),
        ("https://images.example.com:443/a.png#frag", "https://images.example.com/a.png"),
        ("https://images.example.com./a.png", "https://images.example.com./a.png"),
        ("https://cdn.example.org/img/1.webp", "https://cdn.example.org/img/1.webp"),
        ("https://v6only.example.net/x.gif", "https://v6only.example.net/x.gif"),
        ("https://münchen.example/bild.jpg", "https://xn--mnchen-3ya.example/bild.jpg"),
        ("https://MÜNCHEN.example/bild.jpg", "https://xn--mnchen-3ya.example/bild.jpg"),
        ("https://nat64.example.com/", "https://nat64.example.com/"),
        ("https://93.184.215.14/a.png", "https://93.184.215.14/a.png"),
        ("https://[2606:4700:4700::1111]/a.png", "https://[2606:4700:4700::1111]/a.png"),
        ("https://[::ffff:8.8.8.8]/", "https://[::ffff:808:808]/"),
    ];
    for (input, normalised) in cases {
        let checked = g.check(input).await.unwrap_or_else(|e| panic!("{input}: {e:?}"));
        assert_eq!(checked.as_str(), normalised, "{input}");
        assert!(!checked.addresses().is_empty());
    }
}

#[tokio::test]
async fn http_and_extra_ports_only_when_configured() {
    let g = guard(UrlPolicy { allow_http: true, extra_ports: vec![8443], ..UrlPolicy::default() });
    assert!(g.check("http://images.example.com/a.png").await.is_ok());
    assert!(g.check("https://images.example.com:8443/a.png").await.is_ok());
    assert_eq!(g.check("https://images.example.com:8080/").await.unwrap_err(), UrlError::Port);
    // Configuration never opens internal addresses.
    assert_eq!(g.check("http://127.0.0.1/").await.unwrap_err(), UrlError::Forbidden);
    assert_eq!(g.check("http://loopback.attacker.test:8443/").await.unwrap_err(), UrlError::Forbidden);
}

#[tokio::test]
async fn too_long_urls_are_refused_before_parsing() {
    let g = guard(UrlPolicy::default());
    let long = format!("https://images.example.com/{}", "a".repeat(3000));
    assert_eq!(g.check(&long).await.unwrap_err(), UrlError::TooLong);
}

#[tokio::test]
async fn rejections_are_422_naming_the_field_and_nothing_internal() {
    let g = guard(UrlPolicy::default());
    for url in ["https://metadata.attacker.test/", "https://mixed.attacker.test/", "https://nxdomain.attacker.test/"] {
        let err = g.check(url).await.unwrap_err().at("/images/2/url");
        assert_eq!(err.status(), 422);
        let body = serde_json::to_string(&err.problem()).unwrap();
        assert!(body.contains("\"/images/2/url\""), "{body}");
        for internal in ["169.254", "192.168", "127.0", "no such name", "NotFound"] {
            assert!(!body.contains(internal), "{body} leaks {internal}");
        }
    }
}
