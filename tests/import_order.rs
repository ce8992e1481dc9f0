//! The import order of CONTRIBUTING.md's map, checked: each module of
//! `src/` may use only the modules listed before it in [`LAYERS`] (and the
//! helpers of [`BESIDE`]), so no import runs up the table and there is no
//! cycle. A new module goes into one of the two lists, and the map says the
//! same.
//!
//! Read from the source text (`crate::<module>` in code, not in comments).
//! Unit tests (`#[cfg(test)]` onwards, `tests.rs`, `test_support.rs`) may
//! use any layer: they check a module against what uses it.

mod common;

use std::path::Path;

/// Bottom to top: a module may use the ones before it.
const LAYERS: &[&str] = &[
    "common", "scenario", "measure", "results", "lab", "load", "analysis", "output", "run", "ops",
    "cli", "commands",
];

/// Helpers any layer may use; they use only `error`, `common` and each other.
const BESIDE: &[&str] = &["error", "process", "docker", "shutdown"];

/// Imports that run up the table on purpose: (file, module it uses, why).
/// Each is listed in CONTRIBUTING.md too.
const EXCEPTIONS: &[(&str, &str, &str)] = &[(
    "scenario/spec.rs",
    "load",
    "`client.tool` names a tool of load's TOOLS list, whose supported keys are checked as the scenario is read; `client.rate`'s maximum is the builtin client's MAX_RATE",
)];

/// `(line, module)` of each `crate::<module>` in the code of `text`, up to
/// its unit tests.
fn uses(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        // A comment after code; `://` is a URL in a string.
        let code = match line
            .match_indices("//")
            .find(|(at, _)| !line[..*at].ends_with(':'))
        {
            Some((at, _)) => &line[..at],
            None => line,
        };
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                .collect();
            let before = rest[..at].chars().last();
            // `$crate::` is a macro's path, `twlab_crate::` another name.
            if !name.is_empty()
                && !before.is_some_and(|c| c == '$' || c.is_alphanumeric() || c == '_')
            {
                found.push((i + 1, name));
            }
            rest = after;
        }
    }
    found
}

/// Why `module` may not use `used`, or `None` when it may.
fn refused(module: &str, used: &str) -> Option<String> {
    if module == used || used == "error" || used == "common" {
        return None;
    }
    let rank = |m: &str| LAYERS.iter().position(|l| *l == m);
    if BESIDE.contains(&module) {
        return (!BESIDE.contains(&used)).then(|| {
            format!(
                "`{module}` is a helper beside the layers and may use only {BESIDE:?} and common"
            )
        });
    }
    if BESIDE.contains(&used) {
        return None;
    }
    match (rank(module), rank(used)) {
        (Some(m), Some(u)) if u < m => None,
        (Some(_), Some(_)) => Some(format!("`{used}` comes after `{module}` in the table")),
        (None, _) => Some(format!("`{module}` is in neither LAYERS nor BESIDE")),
        (_, None) => Some(format!("`{used}` is in neither LAYERS nor BESIDE")),
    }
}

/// Every import that runs up the table, as `file:line: why`.
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let rel = path.strip_prefix(src).expect("under src");
        let rel_text = rel.to_string_lossy().replace('\\', "/");
        let name = rel.file_name().unwrap_or_default().to_string_lossy();
        if rel.components().count() == 1 && (name == "lib.rs" || name == "main.rs") {
            continue; // the crate root declares every module
        }
        if name == "tests.rs" || name == "test_support.rs" {
            continue;
        }
        let module = rel
            .components()
            .next()
            .map(|c| {
                c.as_os_str()
                    .to_string_lossy()
                    .trim_end_matches(".rs")
                    .to_string()
            })
            .unwrap_or_default();
        let text = std::fs::read_to_string(&path).expect("source file");
        for (line, used) in uses(&text) {
            let Some(why) = refused(&module, &used) else {
                continue;
            };
            let excepted = EXCEPTIONS
                .iter()
                .any(|(file, m, _)| *file == rel_text && *m == used);
            if !excepted {
                out.push(format!(
                    "src/{rel_text}:{line}: `{module}` uses `{used}`: {why}"
                ));
            }
        }
    }
    out
}

#[test]
fn no_import_runs_up_the_table() {
    let found = violations(&common::manifest_dir().join("src"));
    assert!(
        found.is_empty(),
        "imports against CONTRIBUTING.md's map (move the code, or list a documented exception):\n{}",
        found.join("\n")
    );
}

#[test]
fn every_module_of_src_is_in_the_table() {
    let src = common::manifest_dir().join("src");
    for entry in std::fs::read_dir(&src).expect("src").flatten() {
        let name = entry
            .file_name()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if name == "lib" || name == "main" {
            continue;
        }
        assert!(
            LAYERS.contains(&name.as_str()) || BESIDE.contains(&name.as_str()),
            "src/{name} is in neither LAYERS nor BESIDE (and the map)"
        );
    }
}

#[test]
fn every_exception_is_still_needed_and_documented() {
    let src = common::manifest_dir().join("src");
    let contributing = std::fs::read_to_string(common::manifest_dir().join("CONTRIBUTING.md"))
        .expect("CONTRIBUTING.md");
    for (file, used, _) in EXCEPTIONS {
        let text = std::fs::read_to_string(src.join(file)).expect("excepted file");
        assert!(
            uses(&text).iter().any(|(_, m)| m == used),
            "src/{file} no longer uses `{used}`: remove its exception"
        );
        let line = format!("`{file}` uses `{used}`");
        assert!(
            contributing.contains(&line),
            "CONTRIBUTING.md does not list the exception: {line}"
        );
    }
}

#[test]
fn the_check_finds_an_upward_import_and_ignores_comments_and_tests() {
    let text = "//! [`crate::run`] in a doc\nuse crate::common::x;\nuse crate::run::y; // crate::ops\nlet u = \"http://x\"; crate::output::z();\n#[cfg(test)]\nmod tests { use crate::ops::w; }\n";
    let found = uses(text);
    assert_eq!(
        found,
        vec![
            (2, "common".to_string()),
            (3, "run".to_string()),
            (4, "output".to_string())
        ]
    );
    assert!(refused("lab", "run").is_some());
    assert!(refused("run", "lab").is_none());
    assert!(refused("lab", "shutdown").is_none());
    assert!(refused("docker", "lab").is_some());
    assert!(refused("newmodule", "common").is_none());
    assert!(refused("newmodule", "lab").is_some());
}
