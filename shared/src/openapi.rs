//! The parts of the OpenAPI 3.1 document every function shares, so each function documents only
//! its own routes:
//!
//! - [`ProblemDetails`]: the RFC 9457 body of every error (mirrors [`crate::error::Problem`]; a test
//!   keeps the two in step), with one reusable `application/problem+json` response per status
//!   ([`Unauthorized`], [`TooManyRequests`], ...), each example rendered by [`ApiError`] itself;
//! - the response headers (`X-Request-Id`, `RateLimit`, `RateLimit-Policy`, `Retry-After`,
//!   `WWW-Authenticate`) and the Clerk bearer-JWT security scheme [`BEARER`];
//! - [`finish`]: what the shared request path adds to every route (a 500, the request id header,
//!   rate-limit headers on the successes of limited routes).
//!
//! A handler says which errors it can answer with in one line:
//!
//! ```text
//! #[utoipa::path(post, path = "/widgets", tag = "widgets",
//!     security(("clerk" = [])),
//!     responses((status = 200, body = Widget), Unauthorized, ValidationFailed, TooManyRequests))]
//! ```

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use utoipa::openapi::{
    self, ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApiBuilder, Ref, RefOr, ResponseBuilder, Schema,
    ServerBuilder,
    header::{Header, HeaderBuilder},
    path::{Operation, PathItem},
    response::Response,
    schema::{Object, ObjectBuilder, Type},
    security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};
use utoipa::{IntoResponses, PartialSchema, ToSchema};

use crate::error::{ApiError, FieldError, PROBLEM_JSON};

/// Name of the Clerk bearer-JWT security scheme: `security(("clerk" = []))` on a route that
/// requires a signed-in user.
pub const BEARER: &str = "clerk";

// Mirrors `crate::error::Problem` field for field; `problem_schema_mirrors_the_rendered_problem`
// fails when they drift apart. (The doc comment below is the schema's description.)
/// An RFC 9457 problem details object: how every error of the API is rendered.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemDetails {
    /// URI naming the kind of problem, `https://baatcheet.app/problems/{slug}`.
    #[serde(rename = "type")]
    #[schema(example = "https://baatcheet.app/problems/validation-error")]
    pub type_uri: String,
    /// The HTTP reason phrase of `status`.
    #[schema(example = "Unprocessable Entity")]
    pub title: String,
    /// The HTTP status code.
    #[schema(minimum = 400, maximum = 599, example = 422)]
    pub status: u16,
    /// What went wrong, for people. 5xx details never carry internals.
    #[schema(example = "The request has 1 invalid field(s).")]
    pub detail: String,
    /// The request path.
    #[schema(example = "/path/of/the/request")]
    pub instance: Option<String>,
    /// The request id, also in the `X-Request-Id` header and in every log line of the request.
    #[schema(example = "0f8fad5b-d9cb-469f-a165-70867728950e")]
    pub request_id: Option<String>,
    /// The failing input fields (422).
    pub errors: Option<Vec<FieldErrorDetail>>,
    /// Machine-readable reason of a 401, e.g. `expired`, `invalid_signature`, `missing_token`.
    #[schema(example = "expired")]
    pub reason: Option<String>,
    /// The rate-limit policy that was exceeded (429).
    #[schema(example = "global")]
    pub policy: Option<String>,
    /// Seconds until a retry can succeed (429, and some 503), as in the `Retry-After` header.
    #[schema(example = 36)]
    pub retry_after: Option<u64>,
}

/// One failing input field of a 422 problem.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = FieldError)]
pub struct FieldErrorDetail {
    /// JSON pointer (RFC 6901) into the request: body fields as `/message`, query parameters as
    /// `/query/limit`, path parameters as `/path/id`.
    #[schema(example = "/message")]
    pub pointer: String,
    #[schema(example = "must not be empty")]
    pub detail: String,
}

/// One reusable problem response: its component name, status, description, extra headers and
/// the error whose rendering is its example.
struct ProblemResponse {
    name: &'static str,
    /// The key of [`IntoResponses`]; the tests check each example renders with it.
    #[cfg_attr(not(test), allow(dead_code))]
    status: u16,
    description: &'static str,
    headers: &'static [&'static str],
    example: fn() -> ApiError,
}

macro_rules! problem_responses {
    ($( $(#[$doc:meta])* $name:ident = $status:literal, $description:literal, [$($header:literal),*], $example:expr; )*) => {
        $(
            $(#[$doc])*
            #[doc = concat!("\n\nDocuments `", stringify!($status), "`: ", $description)]
            pub struct $name;

            impl IntoResponses for $name {
                fn responses() -> BTreeMap<String, RefOr<Response>> {
                    BTreeMap::from([(stringify!($status).to_string(), RefOr::Ref(Ref::from_response_name(stringify!($name))))])
                }
            }
        )*

        const PROBLEM_RESPONSES: &[ProblemResponse] = &[$(ProblemResponse {
            name: stringify!($name),
            status: $status,
            description: $description,
            headers: &[$($header),*],
            example: $example,
        }),*];
    };
}

problem_responses! {
    /// Malformed request: unparsable JSON, a bad query string or header.
    BadRequest = 400, "The request is malformed.", [], || ApiError::BadRequest("The body is not valid JSON.".into());
    /// Missing, malformed, expired or wrongly signed credentials.
    Unauthorized = 401, "Authentication failed: the credentials are missing, malformed, expired or not valid.",
        ["WWW-Authenticate"],
        || ApiError::Unauthorized { reason: "expired", detail: "The token has expired.".into() };
    /// Authenticated, but not allowed (role, ownership).
    Forbidden = 403, "The caller may not do this.", [], || ApiError::Forbidden("This needs the admin role.".into());
    /// The addressed resource does not exist (or is not the caller's).
    NotFound = 404, "No such resource.", [], || ApiError::NotFound("No conversation has this id.".into());
    /// A known path with a method it does not have.
    MethodNotAllowed = 405, "The method is not allowed for this resource.", [], || ApiError::MethodNotAllowed;
    /// The request conflicts with the current state.
    Conflict = 409, "The request conflicts with the current state of the resource.", [],
        || ApiError::Conflict("The resource was changed meanwhile.".into());
    /// The body exceeds the route's size limit.
    PayloadTooLarge = 413, "The request body is too large.", [],
        || ApiError::PayloadTooLarge("The body exceeds 1048576 bytes.".into());
    /// The body is not in a media type the route accepts.
    UnsupportedMediaType = 415, "The request body's media type is not accepted.", [],
        || ApiError::UnsupportedMediaType("Expected application/json.".into());
    /// Field-level validation failures, each with a JSON pointer.
    ValidationFailed = 422, "The request is well-formed but some fields are invalid; `errors` names each with a JSON pointer.",
        [], || ApiError::Validation(vec![FieldError::new("/message", "must not be empty")]);
    /// A rate-limit policy is exhausted.
    TooManyRequests = 429, "A rate limit is exhausted; `Retry-After` says when to retry.",
        ["Retry-After", "RateLimit", "RateLimit-Policy"],
        || ApiError::QuotaExceeded { policy: "global".into(), retry_after_secs: 36 };
    /// An unexpected failure; the cause is in the log under the request id, never in the body.
    InternalError = 500, "An unexpected error occurred; the body carries no internals, the log has the cause under the request id.",
        [], || ApiError::internal(std::io::Error::other("db-7.internal refused"));
    /// An upstream service failed.
    BadGateway = 502, "An upstream service failed to answer.", [], || ApiError::BadGateway(std::io::Error::other("example").into());
    /// A dependency is unavailable.
    ServiceUnavailable = 503, "A dependency is unavailable; retry later.", ["Retry-After"],
        || ApiError::Unavailable { detail: "The database is unavailable.".into(), retry_after_secs: Some(5) };
}

fn header(description: &str, schema: impl Into<RefOr<Schema>>, example: serde_json::Value) -> Header {
    HeaderBuilder::new().schema(Some(schema)).description(Some(description)).example(Some(example)).build()
}

fn string_schema() -> Object {
    Object::with_type(Type::String)
}

/// The response headers the API documents, by name.
fn named_header(name: &str) -> Header {
    match name {
        "X-Request-Id" => header(
            "The request id: the caller's `X-Request-Id` when well-formed (8-128 of `A-Za-z0-9-_.:`), otherwise a generated UUID. It is also in problem bodies and in every log line of the request.",
            string_schema(),
            "0f8fad5b-d9cb-469f-a165-70867728950e".into(),
        ),
        "Retry-After" => header(
            "Seconds until a retry can succeed.",
            ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)),
            36.into(),
        ),
        "RateLimit" => header(
            "IETF RateLimit field: the policy, the requests remaining (`r`) and seconds until the window resets (`t`).",
            string_schema(),
            "\"chat\";r=99;t=3540".into(),
        ),
        "RateLimit-Policy" => header(
            "IETF RateLimit-Policy field: the policy name, its quota (`q`) and window in seconds (`w`).",
            string_schema(),
            "\"chat\";q=100;w=3600".into(),
        ),
        "WWW-Authenticate" => header(
            "The Bearer challenge (RFC 6750), naming the reason when a token was rejected.",
            string_schema(),
            "Bearer error=\"invalid_token\", error_description=\"expired\"".into(),
        ),
        other => header(other, string_schema(), serde_json::Value::Null),
    }
}

/// Rendered exactly as the API renders it, with the request context filled in.
fn problem_example(err: ApiError) -> serde_json::Value {
    let mut problem = err.problem();
    problem.instance = Some("/path/of/the/request".into());
    problem.request_id = Some("0f8fad5b-d9cb-469f-a165-70867728950e".into());
    serde_json::to_value(problem).unwrap_or_default()
}

fn problem_response(p: &ProblemResponse) -> Response {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(ProblemDetails::name())))
        .example(Some(problem_example((p.example)())))
        .build();
    let mut builder = ResponseBuilder::new().description(p.description).content(PROBLEM_JSON, content);
    for name in ["X-Request-Id"].iter().chain(p.headers) {
        builder = builder.header(*name, named_header(name));
    }
    builder.build()
}

/// Reusable parts: the problem schemas, one response per problem status, the security scheme.
pub fn components() -> openapi::Components {
    let mut builder = ComponentsBuilder::new()
        .schema(ProblemDetails::name(), ProblemDetails::schema())
        .schema(FieldErrorDetail::name(), FieldErrorDetail::schema())
        .security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A Clerk session token (JWT). Locally, `make token` mints a dev token for any user, role and tier.",
                    ))
                    .build(),
            ),
        );
    for p in PROBLEM_RESPONSES {
        builder = builder.response(p.name, problem_response(p));
    }
    builder.build()
}

const DESCRIPTION: &str = "BaatCheet is an AI chat service for Urdu, English and Roman Urdu speakers.

**Authentication.** Routes marked with a lock take a Clerk session token as `Authorization: Bearer <token>` \
(use *Authorize*; locally `make token` mints one).

**Errors** are RFC 9457 `application/problem+json`: `type`, `title`, `status`, `detail`, `instance`, the \
`request_id`, and `errors[]` with a JSON pointer per invalid field (422).

**Rate limits.** Limited routes answer with the IETF `RateLimit` and `RateLimit-Policy` fields; a 429 carries \
`Retry-After`.

**Request ids.** Every response carries `X-Request-Id` (yours when well-formed, else generated).";

/// The document a function starts from: info, the default server and the shared components.
pub fn base() -> openapi::OpenApi {
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("BaatCheet API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(DESCRIPTION))
                .build(),
        )
        .servers(Some([ServerBuilder::new().url("/").build()]))
        .components(Some(components()))
        .build()
}

/// A function's document: [`base`] plus the function's own paths (and the schemas they use),
/// [`finish`]ed. `paths` is typically `OpenApiRouter::into_openapi()` of the routes the function
/// serves, so the router and the document come from one source.
pub fn document(paths: openapi::OpenApi) -> openapi::OpenApi {
    let mut api = base();
    api.merge(paths);
    finish(api)
}

/// Every operation of a path item, with its upper-case method.
pub fn operations(item: &PathItem) -> Vec<(&'static str, &Operation)> {
    [
        ("GET", &item.get),
        ("PUT", &item.put),
        ("POST", &item.post),
        ("DELETE", &item.delete),
        ("OPTIONS", &item.options),
        ("HEAD", &item.head),
        ("PATCH", &item.patch),
        ("TRACE", &item.trace),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.as_ref().map(|op| (m, op)))
    .collect()
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// The (METHOD, path) pairs a document describes.
pub fn routes(api: &openapi::OpenApi) -> BTreeSet<(String, String)> {
    api.paths
        .paths
        .iter()
        .flat_map(|(path, item)| operations(item).into_iter().map(move |(m, _)| (m.to_string(), path.clone())))
        .collect()
}

/// What the shared request path adds to every route: a 500 (panics and internal errors become
/// problem+json), `X-Request-Id` on every response, and on routes that declare a 429 the
/// `RateLimit` fields on their successes too.
pub fn finish(mut api: openapi::OpenApi) -> openapi::OpenApi {
    for item in api.paths.paths.values_mut() {
        for op in operations_mut(item) {
            let responses = &mut op.responses.responses;
            responses
                .entry("500".into())
                .or_insert_with(|| RefOr::Ref(Ref::from_response_name(stringify!(InternalError))));
            let limited = responses.contains_key("429");
            for (status, response) in responses.iter_mut() {
                let RefOr::T(response) = response else { continue };
                let mut names = vec!["X-Request-Id"];
                if limited && status.starts_with('2') {
                    names.extend(["RateLimit", "RateLimit-Policy"]);
                }
                for name in names {
                    response.headers.entry(name.into()).or_insert_with(|| RefOr::T(named_header(name)));
                }
            }
        }
    }
    api
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn schema_json<T: ToSchema>() -> Value {
        serde_json::to_value(T::schema()).unwrap()
    }

    /// Every field `Problem` can render is in the schema, with the type the schema says, and
    /// every required property is always rendered.
    #[test]
    fn problem_schema_mirrors_the_rendered_problem() {
        let schema = schema_json::<ProblemDetails>();
        let props = schema["properties"].as_object().unwrap();
        let required: Vec<&str> = schema["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        for p in PROBLEM_RESPONSES {
            let rendered = problem_example((p.example)());
            let obj = rendered.as_object().unwrap();
            assert_eq!(obj["status"], p.status, "{}", p.name);
            for r in &required {
                assert!(obj.contains_key(*r), "{}: required {r} not rendered", p.name);
            }
            for (key, value) in obj {
                let prop =
                    props.get(key).unwrap_or_else(|| panic!("{}: rendered field {key} is not in the schema", p.name));
                let types = serde_json::to_string(&prop["type"]).unwrap();
                let kind = match value {
                    Value::String(_) => "string",
                    Value::Number(_) => "integer",
                    Value::Array(_) => "array",
                    other => panic!("{key}: unexpected {other}"),
                };
                assert!(types.contains(kind), "{}: {key} is {kind}, schema says {types}", p.name);
            }
        }
        let field = schema_json::<FieldErrorDetail>();
        let rendered = serde_json::to_value(FieldError::new("/a", "b")).unwrap();
        let keys: BTreeSet<_> = rendered.as_object().unwrap().keys().cloned().collect();
        let props: BTreeSet<_> = field["properties"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, props);
    }

    #[test]
    fn responses_reference_components_that_exist() {
        let c = components();
        for p in PROBLEM_RESPONSES {
            assert!(c.responses.contains_key(p.name), "{}", p.name);
        }
        let refs = Unauthorized::responses();
        let RefOr::Ref(r) = &refs["401"] else { panic!("401 is a reference") };
        assert_eq!(r.ref_location, "#/components/responses/Unauthorized");
        let v = serde_json::to_value(&c.responses["TooManyRequests"]).unwrap();
        for h in ["Retry-After", "RateLimit", "RateLimit-Policy", "X-Request-Id"] {
            assert!(v["headers"].get(h).is_some(), "429 documents {h}");
        }
        assert_eq!(v["content"][PROBLEM_JSON]["example"]["retry_after"], 36);
        let v = serde_json::to_value(&c.responses["InternalError"]).unwrap();
        assert!(!v.to_string().contains("db-7"), "no internals in the 500 example: {v}");
    }

    #[test]
    fn finish_adds_what_the_request_path_adds() {
        use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
        let limited = OperationBuilder::new()
            .response("200", Response::new("ok"))
            .response("429", RefOr::Ref(Ref::from_response_name("TooManyRequests")))
            .build();
        let plain = OperationBuilder::new().response("200", Response::new("ok")).build();
        let mut api = base();
        api.paths.paths.insert("/a".into(), PathItem::new(HttpMethod::Post, limited));
        api.paths.paths.insert("/b".into(), PathItem::new(HttpMethod::Get, plain));
        let api = finish(api);
        let v = serde_json::to_value(&api).unwrap();
        let a = &v["paths"]["/a"]["post"]["responses"];
        assert_eq!(a["500"]["$ref"], "#/components/responses/InternalError");
        assert!(a["200"]["headers"]["RateLimit"].is_object());
        assert!(a["200"]["headers"]["X-Request-Id"].is_object());
        let b = &v["paths"]["/b"]["get"]["responses"];
        assert!(b["200"]["headers"].get("RateLimit").is_none());
        assert!(b["200"]["headers"]["X-Request-Id"].is_object());
        assert_eq!(
            routes(&api),
            BTreeSet::from([("POST".to_string(), "/a".to_string()), ("GET".to_string(), "/b".to_string())])
        );
        assert_eq!(v["openapi"], "3.1.0");
    }
}
