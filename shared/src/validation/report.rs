//! The `Validate` trait request types implement, and the `Report` that collects every failing
//! rule (not only the first) as a `FieldError` with a JSON pointer.

use std::fmt::Display;

use crate::error::{ApiError, FieldError};
use crate::validation::pointer;

/// Checks every rule of a deserialized request value and records each failure in `report`.
/// It may also normalise in place (NFC and trimming of short identifiers); it never mangles
/// free text such as message content.
pub trait Validate {
    fn validate(&mut self, report: &mut Report);
}

/// Failures collected while validating one request part, each at the pointer of its field.
#[derive(Debug, Default)]
pub struct Report {
    at: String,
    errors: Vec<FieldError>,
}

impl Report {
    /// A report whose pointers start at `base` (`""` for a body, `/query`, `/path`).
    pub fn new(base: &str) -> Self {
        Self { at: base.to_string(), errors: Vec::new() }
    }

    /// The pointer of the value being validated now.
    pub fn pointer(&self) -> &str {
        &self.at
    }

    /// Runs `f` with the pointer moved to the child `token` (a field name or an index).
    pub fn at<R>(&mut self, token: impl Display, f: impl FnOnce(&mut Report) -> R) -> R {
        let len = self.at.len();
        self.at.push_str(&pointer::join("", &token.to_string()));
        let out = f(self);
        self.at.truncate(len);
        out
    }

    /// Records a failure of the current value.
    pub fn fail(&mut self, detail: impl Into<String>) {
        self.errors.push(FieldError::new(self.at.clone(), detail));
    }

    /// Records a failure of the child `token`.
    pub fn fail_at(&mut self, token: impl Display, detail: impl Into<String>) {
        self.at(token, |r| r.fail(detail));
    }

    /// Records `detail` at the child `token` unless `ok`; returns `ok`.
    pub fn check(&mut self, token: impl Display, ok: bool, detail: impl Into<String>) -> bool {
        if !ok {
            self.fail_at(token, detail);
        }
        ok
    }

    /// Validates a nested value under `token`.
    pub fn nested<T: Validate + ?Sized>(&mut self, token: impl Display, value: &mut T) {
        self.at(token, |r| value.validate(r));
    }

    /// Validates each element of a list under `token/i`.
    pub fn each<T: Validate>(&mut self, token: impl Display, items: &mut [T]) {
        self.at(token, |r| {
            for (i, item) in items.iter_mut().enumerate() {
                r.nested(i, item);
            }
        });
    }

    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }

    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// `Ok` when nothing failed, else a 422 listing every failure.
    pub fn finish(self) -> Result<(), ApiError> {
        self.into_result().map_err(ApiError::Validation)
    }

    /// `Ok` when nothing failed, else every failure: for a layer below the HTTP edge, which
    /// states them in its own error type.
    pub fn into_result(self) -> Result<(), Vec<FieldError>> {
        if self.errors.is_empty() { Ok(()) } else { Err(self.errors) }
    }
}

/// Runs a value's rules with pointers starting at `base`.
pub fn validate<T: Validate>(value: T, base: &str) -> Result<T, ApiError> {
    check(value, base).map_err(ApiError::Validation)
}

/// [`validate`], the failures as fields rather than a problem.
pub fn check<T: Validate>(mut value: T, base: &str) -> Result<T, Vec<FieldError>> {
    let mut report = Report::new(base);
    value.validate(&mut report);
    report.into_result().map(|()| value)
}

/// Values whose every rule is in their type (ids, numbers, enums) need no further checks.
macro_rules! no_rules {
    ($($t:ty),* $(,)?) => {
        $(impl $crate::validation::Validate for $t {
            fn validate(&mut self, _: &mut $crate::validation::Report) {}
        })*
    };
}
pub(crate) use no_rules;

no_rules!(bool, u8, u16, u32, u64, i32, i64, (), serde_json::Value);

impl<T: Validate> Validate for Option<T> {
    fn validate(&mut self, report: &mut Report) {
        if let Some(v) = self {
            v.validate(report);
        }
    }
}

impl<T: Validate> Validate for Vec<T> {
    fn validate(&mut self, report: &mut Report) {
        for (i, item) in self.iter_mut().enumerate() {
            report.nested(i, item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Inner {
        n: u32,
    }
    impl Validate for Inner {
        fn validate(&mut self, r: &mut Report) {
            r.check("n", self.n < 10, "must be below 10");
        }
    }
    struct Outer {
        items: Vec<Inner>,
        name: String,
    }
    impl Validate for Outer {
        fn validate(&mut self, r: &mut Report) {
            r.check("name", !self.name.is_empty(), "must not be empty");
            r.each("items", &mut self.items);
        }
    }

    #[test]
    fn collects_every_failure_with_its_pointer() {
        let v = Outer { items: vec![Inner { n: 1 }, Inner { n: 11 }, Inner { n: 12 }], name: String::new() };
        let Err(ApiError::Validation(errors)) = validate(v, "") else { panic!("expected a validation error") };
        let pointers: Vec<_> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, ["/name", "/items/1/n", "/items/2/n"]);
    }

    #[test]
    fn base_prefixes_pointers() {
        let mut r = Report::new("/query");
        r.fail_at("a/b", "bad");
        assert_eq!(r.errors()[0].pointer, "/query/a~1b");
    }
}
