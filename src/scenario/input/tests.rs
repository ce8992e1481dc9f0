//! Unit tests of the parent module (input).

use super::*;

#[test]
fn an_alias_bomb_is_refused_without_expanding_it() {
    let big = "x".repeat(60_000);
    let refs = vec!["*a"; 200].join(", ");
    let text = format!("name: x\nserver:\n  command: [&a \"{big}\", {refs}]\n");
    let e = guard(&text, "s.yaml").unwrap_err().to_string();
    assert!(e.starts_with("s.yaml:3:"), "{e}");
    assert!(e.contains("MAX_EXPANDED_BYTES"), "{e}");
}

#[test]
fn long_strings_nul_bytes_and_too_many_values_are_refused_at_their_line() {
    let long = format!("a: b\nc: {}\n", "y".repeat(MAX_STRING_BYTES + 1));
    let e = guard(&long, "s.yaml").unwrap_err().to_string();
    assert!(
        e.starts_with("s.yaml:2:") && e.contains("MAX_STRING_BYTES"),
        "{e}"
    );
    let e = guard("a: b\nc: \"x\\0y\"\n", "s.yaml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("s.yaml:2:") && e.contains("NUL"), "{e}");
    let e = guard("a: b\nc: \"\\e[2J\"\n", "s.yaml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("s.yaml:2:") && e.contains("U+001B"), "{e}");
    let many = format!(
        "a: &l [{}]\nb: [{}]\n",
        vec!["1"; 1000].join(","),
        vec!["*l"; 200].join(",")
    );
    let e = guard(&many, "s.yaml").unwrap_err().to_string();
    assert!(e.contains("MAX_EXPANDED_NODES"), "{e}");
    guard("a: &x [1, 2]\nb: *x\nc: {d: 1}\n", "s.yaml").unwrap();
    let e = guard("a: b\nc: !tag {d: 1}\n", "s.yaml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("s.yaml:2:") && e.contains("YAML tag"), "{e}");
}

/// Issue 23, item 11b: an indented first key made libyaml read a
/// second document, reported without a line or a reason.
#[test]
fn an_indented_first_key_is_named_with_the_line_that_ends_it() {
    let e = guard(
        "# c\n  name: x\n  repeat: 2\nserver:\n  port: 80\n",
        "s.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with(
            "s.yaml:4: this line is less indented than the first key (line 2, indented 2 spaces)"
        ),
        "{e}"
    );
    let e = guard("name: x\n---\nname: y\n", "s.yaml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("s.yaml:2: a second YAML document"), "{e}");
}

#[test]
fn nesting_is_measured_before_parsing_and_refused_at_its_line() {
    let at = |text: &str| match check_nesting(text, "s.yaml") {
        Ok(()) => None,
        Err(e) => {
            let e = e.to_string();
            assert!(e.contains("MAX_NESTING_DEPTH"), "{e}");
            e.split(':').nth(1).and_then(|l| l.parse::<usize>().ok())
        }
    };
    let n = MAX_NESTING_DEPTH;
    // Flow collections, under a variant's `set:` as in the issue.
    let flow = |d: usize| {
        format!(
            "name: x\nvariants:\n  - name: a\n    set: {}\n",
            "[".repeat(d)
        )
    };
    assert_eq!(at(&flow(n - 3)), None);
    assert_eq!(at(&flow(100_000)), Some(4));
    assert_eq!(at(&format!("a: {}", "{b: ".repeat(n + 1))), Some(1));
    // Across lines, and past brackets in quotes and comments.
    let many = format!("a:\n{}", "  [\n".repeat(n + 1));
    assert_eq!(at(&many), Some(n));
    let quoted = format!(
        "a: \"{0}\"\nb: '{0}'\nc: x{0}\n# {0}\nd: [\"]\", '{0}']\n",
        "[".repeat(n + 1)
    );
    assert_eq!(at(&quoted), None);
    // An anchor or a tag does not hide a flow collection.
    assert_eq!(at(&format!("a: &x {}", "[".repeat(n + 1))), Some(1));
    // Block indentation and `- ` entries.
    let block: String = (0..=n).map(|d| format!("{}k:\n", " ".repeat(d))).collect();
    assert_eq!(at(&block), Some(n + 1));
    assert_eq!(at(&format!("{}x\n", "- ".repeat(n + 1))), Some(1));
    // A block scalar's lines are text, however they are indented.
    let text: String = (0..=n)
        .map(|d| format!("{}[\n", " ".repeat(d + 2)))
        .collect();
    assert_eq!(at(&format!("a: |-\n{text}b: 1\n")), None);
}

/// What serde_yaml_ng writes (block style, quoted strings holding
/// brackets, `#` and quotes, block scalars) is measured at about its
/// real depth: never refused below the limit, always above it.
#[test]
fn serialized_documents_are_measured_at_their_depth() {
    use serde_yaml_ng::{Mapping, Value};
    let tricky = [
        "[{ #",
        "it's [",
        "\"[[\" '{'",
        "line one\n  [[[[\n- - {",
        "- [",
        "a: [",
    ];
    let nested = |depth: usize| {
        let mut v = Value::String(tricky[depth % tricky.len()].into());
        for d in 0..depth {
            v = if d % 3 == 0 {
                Value::Sequence(vec![Value::String(tricky[d % tricky.len()].into()), v])
            } else {
                let mut m = Mapping::new();
                m.insert(
                    Value::String(tricky[(d + 1) % tricky.len()].into()),
                    Value::Bool(true),
                );
                m.insert(Value::String(format!("k{d}")), v);
                Value::Mapping(m)
            };
        }
        serde_yaml_ng::to_string(&v).unwrap()
    };
    for depth in 1..=MAX_NESTING_DEPTH - 4 {
        let text = nested(depth);
        assert_eq!(too_deep_at(&text), None, "depth {depth}:\n{text}");
    }
    for depth in [MAX_NESTING_DEPTH + 1, 3 * MAX_NESTING_DEPTH] {
        assert!(
            too_deep_at(&nested(depth)).is_some(),
            "depth {depth}:\n{}",
            nested(depth)
        );
    }
}

#[test]
fn every_shipped_and_fixture_file_is_within_the_nesting_limit() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    let mut dirs = vec![
        root.join("scenarios"),
        root.join("labs"),
        root.join("tests/fixtures"),
        root.join("docs"),
    ];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                if !p.ends_with("hostile") {
                    dirs.push(p);
                }
            } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                let text = std::fs::read_to_string(&p).unwrap();
                check_nesting(&text, &p.display().to_string()).unwrap();
                seen += 1;
            }
        }
    }
    assert!(seen > 20, "{seen} files");
}

#[test]
fn only_a_regular_file_is_read_and_only_up_to_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let e = read_input(dir.path(), "scenario").unwrap_err().to_string();
    assert!(e.contains("is not a regular file (a directory)"), "{e}");
    let fifo = dir.path().join("f");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let e = read_input(&fifo, "scenario").unwrap_err().to_string();
    assert!(e.contains("(a named pipe)"), "{e}");
    let e = read_input(Path::new("/dev/zero"), "scenario")
        .unwrap_err()
        .to_string();
    assert!(e.contains("(a character device)"), "{e}");
    let big = dir.path().join("big.yaml");
    std::fs::write(&big, vec![b'#'; MAX_INPUT_BYTES as usize + 1]).unwrap();
    let e = read_input(&big, "scenario").unwrap_err().to_string();
    assert!(e.contains("larger than the 1024 KiB"), "{e}");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, b"name: x\nv: \xff\n").unwrap();
    let e = read_input(&bad, "scenario").unwrap_err().to_string();
    assert!(
        e.ends_with("bad.yaml:2: scenario is not UTF-8 text (invalid byte 0xff at offset 11)"),
        "{e}"
    );
    std::fs::write(&bad, b"name: x\n").unwrap();
    assert_eq!(read_input(&bad, "scenario").unwrap(), "name: x\n");
}
