//! A function's route table: each route declared once, with everything the platform and the tests
//! need to know about it. The handler's `#[utoipa::path]` attribute is the one place of its method
//! and path (read through utoipa-axum's `routes!`); the row adds how it is reached ([`Access`]:
//! authentication and the global limit), the guard it checks itself (a per-user limit policy or a
//! role, of the function's own type `G`), its body limit, whether it may wait long, and the
//! function's response mode. The router, the OpenAPI document, the path -> access map of the
//! global limit and the template test are all built from the table.
//!
//! The platform names no function's route: each function builds its table (`routes.rs` beside its
//! handlers).

use axum::{Extension, Router};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Debug;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

use crate::lambda::ResponseMode;
use crate::rate_limit::{Access, RouteAccess};
use crate::validation::BodyLimit;

/// The guard type of a function whose routes check nothing themselves.
pub type Unguarded = Infallible;

/// What a row declares besides its handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route<G> {
    pub access: Access,
    /// What the route checks itself, after authentication and before its handler.
    pub guard: Option<G>,
    /// The largest JSON body it reads, when not the default ([`BodyLimit`], 1 MiB).
    pub body_limit: Option<usize>,
    /// It may run to the function's timeout (it waits on an upstream): the template must give its
    /// integration a timeout that fits, and no latency alarm may watch it.
    pub long: bool,
}

impl<G> Route<G> {
    const fn reached(access: Access, guard: Option<G>) -> Self {
        Self { access, guard, body_limit: None, long: false }
    }

    /// Not limited, not authenticated (see [`Access::Unlimited`]).
    pub const fn unlimited() -> Self {
        Self::reached(Access::Unlimited, None)
    }

    /// Anyone, charged to their user if their token authenticates, else to their address.
    pub const fn public() -> Self {
        Self::reached(Access::Public, None)
    }

    /// A signed-in user, under their global limit alone.
    pub const fn signed_in() -> Self {
        Self::reached(Access::SignedIn, None)
    }

    /// A signed-in user whose first check is `guard` (a role, say), under their global limit.
    pub const fn guarded(guard: G) -> Self {
        Self::reached(Access::SignedIn, Some(guard))
    }

    /// A signed-in user whose first action is the per-user limit `limit`, before any side effect:
    /// the user's global check is deferred to it and made in the same DynamoDB call
    /// ([`Access::SignedInLimited`]).
    pub const fn limited(limit: G) -> Self {
        Self::reached(Access::SignedInLimited, Some(limit))
    }

    /// Reads JSON bodies of up to `bytes`.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = Some(bytes);
        self
    }

    /// May run to the function's timeout.
    pub fn long(mut self) -> Self {
        self.long = true;
        self
    }
}

/// One operation of a table as the tests read it: method, path and what its row declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRow {
    /// Upper case, as in template.yaml.
    pub method: String,
    /// The path template (`/widgets/{id}`).
    pub path: String,
    pub access: Access,
    /// The guard's name (its `Debug`), if the route has one.
    pub guard: Option<String>,
    pub body_limit: Option<usize>,
    pub long: bool,
    /// How the function's binary answers (the same for every route of a function).
    pub mode: ResponseMode,
}

/// A function's routes: handlers with state `S`, guards of type `G`, answering in one
/// [`ResponseMode`].
pub struct RouteTable<S, G> {
    mode: ResponseMode,
    rows: Vec<(UtoipaMethodRouter<S>, Route<G>)>,
}

impl<S, G> RouteTable<S, G>
where
    S: Clone + Send + Sync + 'static,
    G: Copy + Debug,
{
    pub fn new(mode: ResponseMode) -> Self {
        Self { mode, rows: Vec::new() }
    }

    /// Adds the operations of `handlers` (`routes!(a, b)`: one path, one method each), each
    /// declared as `route`.
    pub fn route(mut self, handlers: UtoipaMethodRouter<S>, route: Route<G>) -> Self {
        self.rows.push((handlers, route));
        self
    }

    pub fn mode(&self) -> ResponseMode {
        self.mode
    }

    /// Every operation with its declaration, in path order.
    pub fn rows(&self) -> Vec<RouteRow> {
        let mut out: Vec<RouteRow> = self
            .rows
            .iter()
            .flat_map(|((_, paths, _), route)| {
                paths.paths.iter().flat_map(move |(path, item)| {
                    crate::openapi::operations(item).into_iter().map(move |(method, _)| RouteRow {
                        method: method.to_string(),
                        path: path.clone(),
                        access: route.access,
                        guard: route.guard.map(|g| format!("{g:?}")),
                        body_limit: route.body_limit,
                        long: route.long,
                        mode: self.mode,
                    })
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.path, &a.method).cmp(&(&b.path, &b.method)));
        out
    }

    /// How each path is reached, for the global limit. A path no route matches is unlimited only
    /// when every route is (the webhook: a sender's mistyped path must not cost its real
    /// deliveries), else charged to its address.
    ///
    /// # Panics
    /// When two rows give one path different access: the global limit tells routes apart by
    /// path alone. Every test that builds the table finds it.
    pub fn access(&self) -> RouteAccess {
        let mut by_path: BTreeMap<String, Access> = BTreeMap::new();
        for row in self.rows() {
            if let Some(other) = by_path.insert(row.path.clone(), row.access) {
                assert_eq!(other, row.access, "{} is declared with two accesses", row.path);
            }
        }
        let default =
            if by_path.values().all(|a| *a == Access::Unlimited) { Access::Unlimited } else { Access::Public };
        RouteAccess::new(default, by_path)
    }

    /// The function's OpenAPI document (without its guards: they add no operation).
    pub fn openapi(self) -> utoipa::openapi::OpenApi {
        let paths = self.rows.into_iter().fold(OpenApiRouter::new(), |all, (handlers, _)| all.routes(handlers));
        crate::openapi::document(paths.into_openapi())
    }

    /// The routes, each behind its guard (`guard` turns a declared guard into its middleware) and
    /// with its body limit, and how each is reached (for [`crate::request_path::wrap`]).
    pub fn router(self, guard: impl Fn(OpenApiRouter<S>, G) -> OpenApiRouter<S>) -> (Router<S>, RouteAccess) {
        let access = self.access();
        let routes = self.rows.into_iter().fold(OpenApiRouter::new(), |all, (handlers, route)| {
            let mut one = OpenApiRouter::new().routes(handlers);
            if let Some(g) = route.guard {
                one = guard(one, g);
            }
            if let Some(bytes) = route.body_limit {
                one = one.layer(Extension(BodyLimit(bytes)));
            }
            all.merge(one)
        });
        (routes.split_for_parts().0, access)
    }
}

impl<S: Clone + Send + Sync + 'static> RouteTable<S, Unguarded> {
    /// [`Self::router`] of a table without guards.
    pub fn plain_router(self) -> (Router<S>, RouteAccess) {
        self.router(|_, never| match never {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa_axum::routes;

    /// A public route
    #[utoipa::path(get, path = "/open", responses((status = 200)))]
    async fn open() {}

    /// A limited route
    #[utoipa::path(post, path = "/items/{id}", responses((status = 200)))]
    async fn write() {}

    /// A guarded route
    #[utoipa::path(get, path = "/items/{id}", responses((status = 200)))]
    async fn read() {}

    /// A probe
    #[utoipa::path(get, path = "/probe", responses((status = 200)))]
    async fn probe() {}

    #[derive(Debug, Clone, Copy)]
    enum Guard {
        Items,
    }

    fn table() -> RouteTable<(), Guard> {
        RouteTable::new(ResponseMode::Buffered)
            .route(routes!(open), Route::public())
            .route(routes!(write, read), Route::limited(Guard::Items).body_limit(10).long())
    }

    #[test]
    fn each_operation_is_a_row_with_its_declaration() {
        let rows = table().rows();
        let seen: Vec<_> = rows.iter().map(|r| (r.method.as_str(), r.path.as_str(), r.access)).collect();
        assert_eq!(
            seen,
            [
                ("GET", "/items/{id}", Access::SignedInLimited),
                ("POST", "/items/{id}", Access::SignedInLimited),
                ("GET", "/open", Access::Public)
            ]
        );
        let write = &rows[1];
        assert_eq!((write.guard.as_deref(), write.body_limit, write.long), (Some("Items"), Some(10), true));
        assert_eq!(rows[2].guard, None);
    }

    #[test]
    fn access_is_by_path_and_unmatched_paths_are_charged_unless_every_route_is_unlimited() {
        let access = table().access();
        assert_eq!(access.of(Some("/items/{id}")), Access::SignedInLimited);
        assert_eq!(access.of(Some("/open")), Access::Public);
        assert_eq!(access.of(None), Access::Public);
        let probes: RouteTable<(), Unguarded> =
            RouteTable::new(ResponseMode::Buffered).route(routes!(probe), Route::unlimited());
        assert_eq!(probes.access().of(None), Access::Unlimited);
    }

    #[test]
    #[should_panic(expected = "/items/{id} is declared with two accesses")]
    fn one_path_has_one_access() {
        let _ = RouteTable::<(), Unguarded>::new(ResponseMode::Buffered)
            .route(routes!(write), Route::signed_in())
            .route(routes!(read), Route::public())
            .access();
    }

    #[test]
    fn the_document_and_the_router_hold_every_row() {
        let doc = table().openapi();
        let documented = crate::openapi::routes(&doc);
        let declared: std::collections::BTreeSet<_> = table().rows().into_iter().map(|r| (r.method, r.path)).collect();
        assert_eq!(documented, declared);
        let guarded = std::sync::atomic::AtomicUsize::new(0);
        let (_, access) = table().router(|r, _| {
            guarded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            r
        });
        assert_eq!(guarded.into_inner(), 1, "one guarded row");
        assert_eq!(access.of(Some("/open")), Access::Public);
    }
}
