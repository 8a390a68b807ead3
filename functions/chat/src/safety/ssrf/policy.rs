//! What a user-given URL may be: scheme, ports, length, and how long resolution may take.

use std::time::Duration;

use baatcheet_shared::config::ConfigError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlPolicy {
    /// `http` besides `https` (off by default: plain HTTP can be rewritten on the way).
    pub allow_http: bool,
    /// Ports allowed besides the scheme's default (443 / 80).
    pub extra_ports: Vec<u16>,
    pub max_len: usize,
    pub resolve_timeout: Duration,
}

impl Default for UrlPolicy {
    fn default() -> Self {
        Self { allow_http: false, extra_ports: Vec::new(), max_len: 2048, resolve_timeout: Duration::from_secs(3) }
    }
}

impl UrlPolicy {
    /// `URL_ALLOW_HTTP` (`true`/`false`), `URL_ALLOWED_PORTS` (comma-separated),
    /// `URL_RESOLVE_TIMEOUT_MS`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut p = Self::default();
        if let Some(v) = get("URL_ALLOW_HTTP") {
            p.allow_http = match v.trim() {
                "true" | "1" => true,
                "false" | "0" | "" => false,
                other => {
                    return Err(ConfigError::Invalid {
                        name: "URL_ALLOW_HTTP",
                        reason: format!("'{other}' is not a boolean"),
                    });
                }
            };
        }
        if let Some(v) = get("URL_ALLOWED_PORTS") {
            p.extra_ports = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<u16>().ok().filter(|&n| n != 0).ok_or_else(|| ConfigError::Invalid {
                        name: "URL_ALLOWED_PORTS",
                        reason: format!("'{s}' is not a port"),
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = get("URL_RESOLVE_TIMEOUT_MS") {
            let ms = v
                .trim()
                .parse::<u64>()
                .map_err(|e| ConfigError::Invalid { name: "URL_RESOLVE_TIMEOUT_MS", reason: e.to_string() })?;
            p.resolve_timeout = Duration::from_millis(ms);
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_environment() {
        let vars = [("URL_ALLOW_HTTP", "true"), ("URL_ALLOWED_PORTS", "8443, 8080")];
        let p = UrlPolicy::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())).unwrap();
        assert!(p.allow_http);
        assert_eq!(p.extra_ports, [8443, 8080]);
        assert_eq!(UrlPolicy::from_lookup(|_| None).unwrap(), UrlPolicy::default());
        assert!(UrlPolicy::from_lookup(|k| (k == "URL_ALLOWED_PORTS").then(|| "0".into())).is_err());
        assert!(UrlPolicy::from_lookup(|k| (k == "URL_ALLOW_HTTP").then(|| "yes".into())).is_err());
    }
}
