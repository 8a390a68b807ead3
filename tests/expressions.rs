//! Injection lint: no DynamoDB expression string (key condition, update, condition, filter,
//! projection) is built at run time. Every `.key_condition_expression(..)`-style call in the
//! workspace must take a string literal or a SCREAMING_CASE constant (or `concat!` of
//! literals), and placeholder names in `.expression_attribute_names/values(..)` must be literals.
//! Values reach DynamoDB only as `:placeholders`, so request text can never change an expression.

use std::path::{Path, PathBuf};
use syn::visit::Visit;

const EXPRESSION_SETTERS: [&str; 5] = [
    "key_condition_expression",
    "update_expression",
    "condition_expression",
    "filter_expression",
    "projection_expression",
];
const PLACEHOLDER_SETTERS: [&str; 2] = ["expression_attribute_names", "expression_attribute_values"];

fn is_const_name(s: &str) -> bool {
    s.chars().any(|c| c.is_ascii_uppercase())
        && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// A compile-time constant string: a literal, a constant, a reference to one, or `concat!`.
fn is_constant(e: &syn::Expr) -> bool {
    match e {
        syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(_), .. }) => true,
        syn::Expr::Path(p) => p.path.segments.last().is_some_and(|s| is_const_name(&s.ident.to_string())),
        syn::Expr::Reference(r) => is_constant(&r.expr),
        syn::Expr::Paren(p) => is_constant(&p.expr),
        syn::Expr::Group(g) => is_constant(&g.expr),
        syn::Expr::Macro(m) => {
            m.mac.path.is_ident("concat")
                && m.mac
                    .parse_body_with(syn::punctuated::Punctuated::<syn::Lit, syn::Token![,]>::parse_terminated)
                    .is_ok()
        }
        _ => false,
    }
}

/// `Some(<constant>)` or `None`, for the `set_*` forms.
fn is_optional_constant(e: &syn::Expr) -> bool {
    match e {
        syn::Expr::Call(c) if matches!(&*c.func, syn::Expr::Path(p) if p.path.is_ident("Some")) => {
            c.args.len() == 1 && c.args.first().is_some_and(is_constant)
        }
        syn::Expr::Path(p) => p.path.is_ident("None"),
        _ => false,
    }
}

fn is_placeholder_literal(e: &syn::Expr, sigil: char) -> bool {
    match e {
        syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => s.value().starts_with(sigil),
        other => is_constant(other),
    }
}

#[derive(Default)]
struct Lint {
    calls: usize,
    violations: Vec<String>,
}

impl<'ast> Visit<'ast> for Lint {
    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        let name = call.method.to_string();
        let line = {
            let text = quote::ToTokens::to_token_stream(call).to_string();
            let text: String = text.chars().take(160).collect();
            format!("`{text}`")
        };
        let first = call.args.first();
        if call.args.is_empty() {
            // A getter (`update.update_expression()`) reads an expression; it builds none.
        } else if EXPRESSION_SETTERS.contains(&name.as_str()) {
            self.calls += 1;
            if !first.is_some_and(is_constant) {
                self.violations.push(format!("{line}: .{name}(..) is not given a constant string"));
            }
        } else if let Some(base) = name.strip_prefix("set_").filter(|b| EXPRESSION_SETTERS.contains(b)) {
            self.calls += 1;
            if !first.is_some_and(is_optional_constant) {
                self.violations.push(format!("{line}: .set_{base}(..) is not given a constant string"));
            }
        } else if PLACEHOLDER_SETTERS.contains(&name.as_str()) {
            let sigil = if name.ends_with("names") { '#' } else { ':' };
            if !first.is_some_and(|e| is_placeholder_literal(e, sigil)) {
                self.violations.push(format!("{line}: .{name}(..) placeholder is not a literal starting with {sigil}"));
            }
        }
        syn::visit::visit_expr_method_call(self, call);
    }
}

/// The violations in one file's source. Calls hidden in macro bodies cannot be checked, so a
/// file where the text mentions more setter calls than the syntax tree shows is a violation too.
fn lint_source(src: &str) -> Vec<String> {
    let file = match syn::parse_file(src) {
        Ok(f) => f,
        Err(e) => return vec![format!("does not parse: {e}")],
    };
    let mut lint = Lint::default();
    lint.visit_file(&file);
    let textual: usize = EXPRESSION_SETTERS
        .iter()
        .map(|s| {
            let getters = src.matches(&format!(".{s}()")).count() + src.matches(&format!(".set_{s}()")).count();
            src.matches(&format!(".{s}(")).count() + src.matches(&format!(".set_{s}(")).count() - getters
        })
        .sum();
    if textual > lint.calls {
        lint.violations
            .push(format!("{} expression setter call(s) inside macros cannot be checked", textual - lint.calls));
    }
    lint.violations
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if path.is_dir() {
            if !matches!(name.as_str(), "target" | ".git" | ".local" | "node_modules") {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_expression_in_the_workspace_is_built_at_run_time() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    let me = Path::new(env!("CARGO_MANIFEST_DIR")).join("expressions.rs");
    let mut files = Vec::new();
    rust_files(root, &mut files);
    assert!(files.len() > 10, "the scan found the workspace sources");
    let mut all = Vec::new();
    for f in files.iter().filter(|f| **f != me) {
        let src = std::fs::read_to_string(f).expect("readable source");
        for v in lint_source(&src) {
            all.push(format!("{}: {v}", f.strip_prefix(root).unwrap_or(f).display()));
        }
    }
    assert!(all.is_empty(), "DynamoDB expressions must be constant strings:\n{}", all.join("\n"));
}

#[test]
fn the_lint_catches_built_expressions() {
    let bad = [
        r#"fn f(c: &C, f: &str) { c.update_item().update_expression(format!("SET {f} = :v")); }"#,
        r#"fn f(c: &C, f: &str) { c.query().key_condition_expression("pk = :pk AND ".to_string() + f); }"#,
        r#"fn f(c: &C, expr: String) { c.scan().filter_expression(expr); }"#,
        r#"fn f(c: &C, e: &str) { c.put_item().condition_expression(e); }"#,
        r#"fn f(c: &C, e: String) { c.get_item().set_projection_expression(Some(e)); }"#,
        r##"fn f(c: &C, name: &str) { c.update_item().update_expression("SET #n = :v").expression_attribute_names(name, "x"); }"##,
        r#"fn f(c: &C, k: String) { c.update_item().update_expression("SET a = :v").expression_attribute_values(format!(":{k}"), v); }"#,
        r#"fn f(c: &C, e: &str) { tokio::join!(c.put_item().condition_expression(e).send()); }"#,
    ];
    for src in bad {
        assert!(!lint_source(src).is_empty(), "not caught: {src}");
    }
}

#[test]
fn the_lint_accepts_constant_expressions() {
    let good = r##"
        const UPDATE_TAT: &str = "SET #tat = :tat, #exp = :exp";
        mod exprs { pub const ONLY_IF_NEW: &str = "attribute_not_exists(pk)"; }
        fn f(c: &C, user: &ValidatedId) {
            c.update_item()
                .update_expression(UPDATE_TAT)
                .condition_expression(exprs::ONLY_IF_NEW)
                .expression_attribute_names("#tat", "tat")
                .expression_attribute_values(":tat", AttributeValue::S(user.to_string()));
            c.query().key_condition_expression("gsi1pk = :u").projection_expression(concat!("pk", ", ", "sk"));
            c.get_item().set_projection_expression(Some(&PROJECTION)).set_filter_expression(None);
        }
    "##;
    assert_eq!(lint_source(good), Vec::<String>::new());
}
