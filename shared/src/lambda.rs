//! How a function's binary answers Lambda: declared once per function (its `RESPONSE_MODE`), so
//! main and the template test read the same value.

/// The wire format a binary answers every invocation in. A binary has exactly one, so every route
/// of a function must use the API Gateway integration that expects it; a mismatch is a 502.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMode {
    /// `lambda_http::run`: the JSON proxy response (`statusCode`, `headers`, `body`, ...), what
    /// API Gateway's `.../invocations` integration (SAM `ResponseTransferMode: BUFFERED`, the
    /// default) expects.
    Buffered,
    /// `lambda_http::run_with_streaming_response`: a JSON prelude, 8 NUL bytes, then the body as
    /// it is produced, what API Gateway's `responseTransferMode: STREAM` integration
    /// (`.../response-streaming-invocations`, SAM `RESPONSE_STREAM`) expects.
    Streamed,
}

/// Runs the Lambda runtime loop with `app`, answering in `mode`.
pub async fn serve(app: axum::Router, mode: ResponseMode) -> Result<(), lambda_http::Error> {
    match mode {
        ResponseMode::Buffered => lambda_http::run(app).await,
        ResponseMode::Streamed => lambda_http::run_with_streaming_response(app).await,
    }
}
