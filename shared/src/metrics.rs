//! Service metrics as CloudWatch Embedded Metric Format (EMF) lines on stdout: code records
//! through the `metrics` facade (`metrics::counter!(names::X, ...)`), the
//! `metrics_cloudwatch_embedded` recorder aggregates, and [`flush`] writes one EMF document per
//! label set when a response body ends, so each invocation's figures leave with its logs.
//!
//! Dimensions are bounded: `function` on every document, plus the labels each metric declares
//! below (route template, status class, policy, provider, model...). Never a user id or a raw
//! path. Without `AWS_LAMBDA_FUNCTION_NAME` (router tests, `make dev`'s single process) no
//! recorder is installed and recording is a no-op.

use metrics::Unit;
use std::io::Write;
use std::sync::OnceLock;

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "BaatCheet";

/// Every metric name the code emits: the one list the template's alarms and dashboard are checked
/// against (tests/template.rs).
pub mod names {
    /// Requests served (labels `route`, `status_class`).
    pub const REQUESTS: &str = "Requests";
    /// Milliseconds from the request's arrival to its response headers (label `route`).
    pub const REQUEST_LATENCY: &str = "RequestLatency";
    /// 1 on the first invocation of an instance.
    pub const COLD_STARTS: &str = "ColdStarts";

    pub const ALL: &[&str] = &[REQUESTS, REQUEST_LATENCY, COLD_STARTS];
}

/// The dimension names (metric labels) allowed, each with a bounded set of values.
pub mod labels {
    pub const FUNCTION: &str = "function";
    /// API Gateway's resource path (`/api/v1/conversations/{id}`), never the request's path.
    pub const ROUTE: &str = "route";
    /// `2xx`, `4xx`, `5xx`...
    pub const STATUS_CLASS: &str = "status_class";
}

static COLLECTOR: OnceLock<&'static metrics_cloudwatch_embedded::Collector> = OnceLock::new();

/// Installs the EMF recorder for this Lambda function (its name is the `function` dimension) and
/// counts the cold start. Does nothing outside Lambda or when a recorder is already installed.
pub fn init_from_env() {
    let Ok(function) = std::env::var("AWS_LAMBDA_FUNCTION_NAME") else { return };
    install(function);
}

fn install(function: String) {
    if COLLECTOR.get().is_some() {
        return;
    }
    let built = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(NAMESPACE)
        .with_dimension(labels::FUNCTION, function)
        .init();
    match built {
        Ok(collector) => {
            let _ = COLLECTOR.set(collector);
            metrics::describe_counter!(names::REQUESTS, Unit::Count, "requests served");
            metrics::describe_histogram!(names::REQUEST_LATENCY, Unit::Milliseconds, "time to response headers");
            metrics::describe_counter!(names::COLD_STARTS, Unit::Count, "first invocations of an instance");
            metrics::counter!(names::COLD_STARTS).increment(1);
        }
        Err(e) => tracing::warn!(error = %e, "metrics recorder not installed"),
    }
}

/// Writes what was recorded since the last flush as EMF lines, in one write to stdout (lines of
/// concurrent writers do not interleave).
pub fn flush() {
    let Some(collector) = COLLECTOR.get() else { return };
    let mut buf = Vec::with_capacity(1024);
    if let Err(e) = collector.flush(&mut buf) {
        tracing::warn!(error = %e, "metrics could not be written");
        return;
    }
    if !buf.is_empty() {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(&buf);
        let _ = out.flush();
    }
}

/// `2xx`, `4xx`... of a status code.
pub fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

/// Records one served request.
pub fn record_request(route: &str, status: u16, latency: std::time::Duration) {
    let route = route.to_owned();
    metrics::counter!(names::REQUESTS, labels::ROUTE => route.clone(), labels::STATUS_CLASS => status_class(status))
        .increment(1);
    metrics::histogram!(names::REQUEST_LATENCY, labels::ROUTE => route).record(latency.as_secs_f64() * 1000.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        assert_eq!(status_class(200), "2xx");
        assert_eq!(status_class(429), "4xx");
        assert_eq!(status_class(503), "5xx");
    }

    #[test]
    fn metric_names_are_unique_and_plain() {
        let mut seen = std::collections::BTreeSet::new();
        for n in names::ALL {
            assert!(seen.insert(n), "{n} twice");
            assert!(n.chars().all(|c| c.is_ascii_alphanumeric()), "{n}");
        }
    }
}
