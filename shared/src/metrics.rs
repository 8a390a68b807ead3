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

    /// Requests refused by a rate limit (label `policy`).
    pub const RATE_LIMITED: &str = "RateLimited";
    /// Streamed answers opened: a first token arrived (labels `provider`, `model`).
    pub const COMPLETIONS: &str = "Completions";
    /// Milliseconds from asking the providers to the first token, failovers included (labels
    /// `provider`, `model`).
    pub const FIRST_TOKEN_LATENCY: &str = "FirstTokenLatency";
    /// Failed upstream attempts, each (labels `provider`, `model`).
    pub const PROVIDER_ERRORS: &str = "ProviderErrors";
    /// Answers served by another provider or key than the first one tried (labels `provider`:
    /// the one that answered, `model`).
    pub const FAILOVERS: &str = "Failovers";
    /// Signed webhook deliveries handled (labels `event_type`, `outcome`).
    pub const WEBHOOK_EVENTS: &str = "WebhookEvents";
    /// Prompt tokens of answers, as the upstream reported them or estimated (labels `provider`,
    /// `model`).
    pub const INPUT_TOKENS: &str = "InputTokens";
    /// Completion tokens of answers (labels `provider`, `model`).
    pub const OUTPUT_TOKENS: &str = "OutputTokens";
    /// Milliseconds from a streamed answer's first token to its end (labels `provider`, `model`).
    pub const STREAM_DURATION: &str = "StreamDuration";
    /// A provider's circuit opened (or re-opened) after consecutive failures (label `provider`).
    pub const CIRCUIT_OPENS: &str = "CircuitOpens";
    /// Rate-limit decisions made by this instance's fallback instead of the store (labels
    /// `policy`, `reason`: `down`/`contended`, `outcome`: `allowed`/`denied`/`unavailable`).
    pub const LIMITER_FALLBACKS: &str = "LimiterFallbacks";
    /// Times the rate limiter gave up on its store after `RATE_LIMIT_STORE_TIMEOUT_MS` with no
    /// answer (a decision's wait, or a store call).
    pub const STORE_TIMEOUTS: &str = "StoreTimeouts";

    pub const ALL: &[&str] = &[
        REQUESTS,
        REQUEST_LATENCY,
        COLD_STARTS,
        RATE_LIMITED,
        COMPLETIONS,
        FIRST_TOKEN_LATENCY,
        PROVIDER_ERRORS,
        FAILOVERS,
        WEBHOOK_EVENTS,
        INPUT_TOKENS,
        OUTPUT_TOKENS,
        STREAM_DURATION,
        CIRCUIT_OPENS,
        LIMITER_FALLBACKS,
        STORE_TIMEOUTS,
    ];
}

/// The dimension names (metric labels) allowed, each with a bounded set of values.
pub mod labels {
    pub const FUNCTION: &str = "function";
    /// API Gateway's resource path (the route template, `/widgets/{id}`), never the request's path.
    pub const ROUTE: &str = "route";
    /// `2xx`, `4xx`, `5xx`...
    pub const STATUS_CLASS: &str = "status_class";
    /// A rate-limit policy's name.
    pub const POLICY: &str = "policy";
    /// A provider's configured name.
    pub const PROVIDER: &str = "provider";
    /// A model id of the provider catalog (only ids the catalog routes).
    pub const MODEL: &str = "model";
    /// A Clerk event type (`user.created`...), from a delivery whose signature was verified.
    pub const EVENT_TYPE: &str = "event_type";
    pub const OUTCOME: &str = "outcome";
    /// Why the rate limiter's fallback decided: `down` (the store is down) or `contended`.
    pub const REASON: &str = "reason";
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
            metrics::describe_counter!(names::RATE_LIMITED, Unit::Count, "requests refused by a rate limit");
            metrics::describe_counter!(names::COMPLETIONS, Unit::Count, "streamed answers opened");
            metrics::describe_histogram!(names::FIRST_TOKEN_LATENCY, Unit::Milliseconds, "time to first token");
            metrics::describe_counter!(names::PROVIDER_ERRORS, Unit::Count, "failed upstream attempts");
            metrics::describe_counter!(names::FAILOVERS, Unit::Count, "answers after a failed attempt");
            metrics::describe_counter!(names::WEBHOOK_EVENTS, Unit::Count, "webhook deliveries handled");
            metrics::describe_counter!(names::INPUT_TOKENS, Unit::Count, "prompt tokens");
            metrics::describe_counter!(names::OUTPUT_TOKENS, Unit::Count, "completion tokens");
            metrics::describe_histogram!(names::STREAM_DURATION, Unit::Milliseconds, "first token to end of a stream");
            metrics::describe_counter!(names::CIRCUIT_OPENS, Unit::Count, "provider circuits opened");
            metrics::describe_counter!(names::LIMITER_FALLBACKS, Unit::Count, "rate-limit fallback decisions");
            metrics::describe_counter!(names::STORE_TIMEOUTS, Unit::Count, "rate-limit store calls timed out");
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

/// Records one served request: per route and status class, and per function alone and per
/// function and status class, which each function's 5xx-rate alarm divides (template.yaml).
pub fn record_request(route: &str, status: u16, latency: std::time::Duration) {
    let route = route.to_owned();
    let class = status_class(status);
    metrics::counter!(names::REQUESTS, labels::ROUTE => route.clone(), labels::STATUS_CLASS => class).increment(1);
    metrics::counter!(names::REQUESTS).increment(1);
    metrics::counter!(names::REQUESTS, labels::STATUS_CLASS => class).increment(1);
    metrics::histogram!(names::REQUEST_LATENCY, labels::ROUTE => route).record(latency.as_secs_f64() * 1000.0);
}

/// One request refused by `policy`.
pub fn record_rate_limited(policy: &str) {
    metrics::counter!(names::RATE_LIMITED, labels::POLICY => policy.to_owned()).increment(1);
}

/// One failed upstream attempt; also per function alone, what the provider-error alarm watches
/// (an alarm on a function of its own stack, not on every stack's metrics in the account).
pub fn record_provider_error(provider: &str, model: &str) {
    metrics::counter!(names::PROVIDER_ERRORS, labels::PROVIDER => provider.to_owned(), labels::MODEL => model.to_owned())
        .increment(1);
    metrics::counter!(names::PROVIDER_ERRORS).increment(1);
}

/// An upstream call that succeeded with `provider` after `failed` failed attempts.
pub fn record_provider_success(provider: &str, model: &str, failed: u32) {
    if failed > 0 {
        metrics::counter!(names::FAILOVERS, labels::PROVIDER => provider.to_owned(), labels::MODEL => model.to_owned())
            .increment(1);
    }
}

/// A streamed answer whose first token arrived `first_token` after the providers were asked.
pub fn record_completion_opened(provider: &str, model: &str, first_token: std::time::Duration) {
    let (p, m) = (provider.to_owned(), model.to_owned());
    metrics::counter!(names::COMPLETIONS, labels::PROVIDER => p.clone(), labels::MODEL => m.clone()).increment(1);
    let ms = first_token.as_secs_f64() * 1000.0;
    metrics::histogram!(names::FIRST_TOKEN_LATENCY, labels::PROVIDER => p, labels::MODEL => m).record(ms);
    // Also per function alone: what the first-token alarm's percentile is taken over.
    metrics::histogram!(names::FIRST_TOKEN_LATENCY).record(ms);
}

/// The tokens of one answer (streamed or whole) and, for a stream, its duration from the first
/// token to its end.
pub fn record_answer(
    provider: &str,
    model: &str,
    input_tokens: u64,
    output_tokens: u64,
    streamed: Option<std::time::Duration>,
) {
    let (p, m) = (provider.to_owned(), model.to_owned());
    metrics::counter!(names::INPUT_TOKENS, labels::PROVIDER => p.clone(), labels::MODEL => m.clone())
        .increment(input_tokens);
    metrics::counter!(names::OUTPUT_TOKENS, labels::PROVIDER => p.clone(), labels::MODEL => m.clone())
        .increment(output_tokens);
    if let Some(d) = streamed {
        metrics::histogram!(names::STREAM_DURATION, labels::PROVIDER => p, labels::MODEL => m)
            .record(d.as_secs_f64() * 1000.0);
    }
}

/// A provider's circuit opened.
pub fn record_circuit_open(provider: &str) {
    metrics::counter!(names::CIRCUIT_OPENS, labels::PROVIDER => provider.to_owned()).increment(1);
}

/// One rate-limit decision made by the fallback (`reason`: `down`/`contended`; `outcome`:
/// `allowed`/`denied`/`unavailable`); also per function alone, what the fallback alarm sums over
/// its stack's functions.
pub fn record_limiter_fallback(policy: &'static str, reason: &'static str, outcome: &'static str) {
    metrics::counter!(names::LIMITER_FALLBACKS, labels::POLICY => policy, labels::REASON => reason, labels::OUTCOME => outcome)
        .increment(1);
    metrics::counter!(names::LIMITER_FALLBACKS).increment(1);
}

/// One rate-limit store call given up on after its timeout.
pub fn record_store_timeout() {
    metrics::counter!(names::STORE_TIMEOUTS).increment(1);
}

/// One verified webhook delivery. An event type outside `[a-z._]{1,64}` is counted as `other`,
/// so a dimension never takes an arbitrary value.
pub fn record_webhook_event(event_type: &str, outcome: &'static str) {
    let plain = (1..=64).contains(&event_type.len())
        && event_type.bytes().all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_');
    let event_type = if plain { event_type.to_owned() } else { "other".to_owned() };
    metrics::counter!(names::WEBHOOK_EVENTS, labels::EVENT_TYPE => event_type, labels::OUTCOME => outcome).increment(1);
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
