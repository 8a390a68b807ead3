//! Structured JSON logs in Lambda's format (one JSON object a line: timestamp, level, message,
//! fields, and the request span with its request id). `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG` set the
//! level; `LOG_FORMAT=text` gives readable lines for local work.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

pub fn init() {
    init_with_writer(std::io::stdout);
}

/// Installs the global subscriber writing to `make_writer` (tests pass a sink to stay quiet).
pub fn init_with_writer<W>(make_writer: W)
where
    W: for<'a> fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into())
        .to_lowercase();
    // The AWS SDK is chatty at info; its failures surface through our own error logs.
    let filter = EnvFilter::try_new(format!("{level},aws_config=warn,aws_smithy_runtime=warn,hyper=warn"))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let text = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("text"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = if text {
        registry.with(fmt::layer().with_writer(make_writer).with_target(false)).try_init()
    } else {
        registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_target(true)
                    .with_writer(make_writer),
            )
            .try_init()
    };
    // A second init (tests, or a gateway mounting several functions) keeps the first subscriber.
    let _ = result;
    crate::metrics::init_from_env();
}
