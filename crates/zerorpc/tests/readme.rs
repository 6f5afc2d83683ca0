//! The README stands alone and its Rust is compiled code: every ```rust
//! block is one of the examples (built by `cargo test`; the blocks also run
//! as doctests of this crate), shown as it is, and no link or path leads
//! outside the repository.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn readme() -> String {
    std::fs::read_to_string(repo().join("README.md")).expect("README.md")
}

/// The fenced blocks of a markdown text: (info string, body).
fn fenced_blocks(text: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in text.lines() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => open = Some((info.trim().to_owned(), String::new())),
            (Some(_), Some(_)) => blocks.extend(open.take()),
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "README: a code block is never closed");
    blocks
}

fn examples() -> Vec<(PathBuf, String)> {
    let mut all = Vec::new();
    for dir in [
        "crates/zerorpc/examples",
        "crates/zmtp/examples",
        "crates/zerorpc-bus/examples",
    ] {
        for entry in std::fs::read_dir(repo().join(dir)).expect("examples dir") {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                all.push((path, text));
            }
        }
    }
    all
}

#[test]
fn readme_rust_blocks_are_the_examples_verbatim() {
    let examples = examples();
    let rust: Vec<String> = fenced_blocks(&readme())
        .into_iter()
        .filter(|(info, _)| info.split(',').any(|t| t.trim() == "rust"))
        .map(|(_, body)| body)
        .collect();
    assert!(rust.len() >= 5, "README: expected the examples' blocks");
    for body in &rust {
        assert!(
            examples.iter().any(|(_, text)| text == body),
            "README: this Rust block is not an example file as it is \
             (edit the file in examples/ and paste it):\n{body}"
        );
    }
    for name in ["calc.rs", "oneway.rs", "tracing.rs", "curve.rs", "hello.rs"] {
        let (_, text) = examples
            .iter()
            .find(|(p, _)| p.file_name().is_some_and(|f| f == name))
            .unwrap_or_else(|| panic!("examples: {name} missing"));
        assert!(rust.contains(text), "README does not show {name}");
    }
}

#[test]
fn readme_blocks_without_a_language_are_not_compiled_as_rust() {
    // rustdoc compiles an unlabelled block as Rust: label shell, config
    // and text blocks.
    for (info, body) in fenced_blocks(&readme()) {
        assert!(!info.is_empty(), "README: unlabelled code block:\n{body}");
    }
}

#[test]
fn readme_refers_to_nothing_outside_the_repository() {
    let text = readme();
    for bad in ["../", "/work/", "shared/PROTOCOL"] {
        assert!(
            !text.contains(bad),
            "README refers outside the repository ({bad:?})"
        );
    }
    // every crates/... path it names exists
    for (i, _) in text.match_indices("`crates/") {
        let path: String = text[i + 1..]
            .chars()
            .take_while(|c| !matches!(c, '`' | ' ' | ':' | ','))
            .collect();
        let path = path.trim_end_matches(['.', ')']);
        assert!(
            repo().join(path).exists(),
            "README names {path}, which does not exist"
        );
    }
}
