//! `shared/` is the platform: no module of it names a function's path, table, setting or rate-limit
//! policy (issue 19). Each function declares those in its own crate; this test reads every source
//! file of `shared/src` (its product code: a file's `#[cfg(test)]` part, with its own sample names,
//! is left out) and fails naming each `file:line` that does.

use std::path::{Path, PathBuf};

/// What only a function may name: the API's function paths, the functions' tables and settings,
/// and chat's policies (taken from chat's own declarations, so a new policy is covered too).
fn forbidden() -> Vec<String> {
    let mut words: Vec<String> = [
        "/api/v1/",
        "CONVERSATIONS_TABLE",
        "WEBHOOK_DELIVERIES_TABLE",
        "STREAM_LEASES_TABLE",
        "conversations",
        "webhook_deliveries",
        "webhook-deliveries",
        "stream_leases",
        "stream-leases",
        "HEALTH_PROBE_TTL_MS",
        "DEPENDENCY_TIMEOUT_MS",
        webhook::DELIVERIES_TABLE,
    ]
    .map(String::from)
    .into();
    for spec in chat::limits::ALL {
        words.push(format!("\"{}\"", spec.name));
        words.push(format!("{}#", spec.name));
        for (policy, s) in spec.settings() {
            words.extend([s.rate_var.to_string(), s.fallback_var.to_string(), format!("\"{}\"", policy.label())]);
        }
    }
    words.sort();
    words.dedup();
    words
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("shared/src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `file:line: word` of product code in `root` that names a forbidden word.
fn findings(root: &Path, words: &[String]) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a source file");
        let shown = file.strip_prefix(root.parent().unwrap_or(root)).unwrap_or(&file).display().to_string();
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("#[cfg(test)]") {
                break;
            }
            for w in words.iter().filter(|w| line.contains(w.as_str())) {
                found.push(format!("shared/{shown}:{}: names `{w}`: {}", n + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn no_module_of_shared_names_a_functions_path_table_or_policy() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/src");
    let found = findings(&root, &forbidden());
    assert!(found.is_empty(), "shared/ names what a function owns:\n{}", found.join("\n"));
}

#[test]
fn the_check_finds_a_function_path_table_and_policy() {
    let dir = std::env::temp_dir().join(format!("boundary-{}", uuid::Uuid::new_v4().simple()));
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("nested")).unwrap();
    std::fs::write(src.join("a.rs"), "// see /api/v1/chat/completions\nfn ok() {}\n").unwrap();
    std::fs::write(
        src.join("nested/b.rs"),
        "const T: &str = \"CONVERSATIONS_TABLE\";\nconst P: &str = \"search\";\n#[cfg(test)]\nconst S: &str = \"chat\";\n",
    )
    .unwrap();
    let found = findings(&src, &forbidden());
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0].starts_with("shared/src/a.rs:1: names `/api/v1/`"), "{found:#?}");
    assert!(found[1].starts_with("shared/src/nested/b.rs:1: names `CONVERSATIONS_TABLE`"), "{found:#?}");
    assert!(found[2].starts_with("shared/src/nested/b.rs:2: names `\"search\"`"), "{found:#?}");
}
