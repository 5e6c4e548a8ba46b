//! A guard on the rule that storage keys are built only in `src/storage/`: it reads the
//! crate's source and fails on any string literal, in code compiled outside tests, that
//! starts with a registered prefix (see [`super::REGISTRY`]), unless the literal is an
//! API path on [`API_PATHS`].
//!
//! Test code (`#[cfg(test)]` items and the module files they declare) is not checked:
//! tests name keys literally on purpose, to pin the byte layout that existing data and
//! snapshots rely on.
//!
//! The test reads the source tree with `std::fs`: it is test code, outside the seam.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// How an [`API_PATHS`] entry matches a literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Match {
    /// The literal is the entry.
    Exact,
    /// The literal starts with the entry.
    Prefix,
}

/// Literals that start like a storage prefix but are API paths (a request path, a mount
/// point or an ACL path), never a storage key, each with why nothing it matches can be
/// a key. Keep it short: a new entry needs a reason of the same kind.
const API_PATHS: &[(&str, Match, &str)] = &[
    (
        "auth/token/",
        Match::Prefix,
        "the token auth method's endpoints (create, lookup, revoke, ...); tokens are \
         stored under `Store::Tokens`, and auth-method data lives under \
         `auth/<mount uuid>/`, never under the path name `token`",
    ),
    (
        "auth/",
        Match::Exact,
        "the API namespace of auth methods: a route and mount-point prefix that request \
         paths are matched and stripped against",
    ),
    (
        "auth/{}",
        Match::Exact,
        "an auth method's mount point, formatted from the mount's path (`entry.path`); \
         its data prefix comes from `mount_data_prefix`",
    ),
    (
        "auth/{path}",
        Match::Exact,
        "a remount's source or target mount point, formatted from a mount path",
    ),
    (
        "auth/{}login/{username}",
        Match::Exact,
        "userpass's login request path, for the audit record and the lease path",
    ),
    (
        "auth/{mount}/login/{username}",
        Match::Exact,
        "the CLI's login request path",
    ),
    (
        "identity/",
        Match::Exact,
        "the identity mount's path (a built-in mount that cannot be moved or disabled); \
         the identity store's keys come from `Store::Identity`",
    ),
    (
        "sys/wrapping/wrap",
        Match::Exact,
        "the wrapping endpoint, the creation path of a wrapping token",
    ),
    (
        "sys/wrapping/unwrap",
        Match::Exact,
        "the unwrapping endpoint the CLI requests",
    ),
];

fn allowed(literal: &str) -> bool {
    API_PATHS.iter().any(|(path, how, _)| match how {
        Match::Exact => literal == *path,
        Match::Prefix => literal.starts_with(path),
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal { text: String, line: usize },
    Word(String),
    Punct(char),
}

/// Splits Rust source into string literals, words and punctuation, dropping comments,
/// whitespace and character literals. Enough of Rust's lexical grammar for this guard:
/// line and nested block comments, escaped, byte, C and raw strings, lifetimes.
fn tokens(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut index = 0;
    let at = |index: usize| chars.get(index).copied();
    while let Some(char) = at(index) {
        match char {
            '\n' => {
                line += 1;
                index += 1;
            }
            '/' if at(index + 1) == Some('/') => {
                while at(index).is_some_and(|char| char != '\n') {
                    index += 1;
                }
            }
            '/' if at(index + 1) == Some('*') => {
                let mut depth = 0;
                loop {
                    match (at(index), at(index + 1)) {
                        (Some('/'), Some('*')) => {
                            depth += 1;
                            index += 2;
                        }
                        (Some('*'), Some('/')) => {
                            depth -= 1;
                            index += 2;
                            if depth == 0 {
                                break;
                            }
                        }
                        (Some(char), _) => {
                            line += usize::from(char == '\n');
                            index += 1;
                        }
                        (None, _) => break,
                    }
                }
            }
            '"' => {
                let start_line = line;
                let mut text = String::new();
                index += 1;
                while let Some(char) = at(index) {
                    index += 1;
                    match char {
                        '"' => break,
                        '\\' => {
                            if let Some(escaped) = at(index) {
                                line += usize::from(escaped == '\n');
                                text.push('\\');
                                text.push(escaped);
                                index += 1;
                            }
                        }
                        _ => {
                            line += usize::from(char == '\n');
                            text.push(char);
                        }
                    }
                }
                out.push(Token::Literal {
                    text,
                    line: start_line,
                });
            }
            '\'' => {
                // A character literal ('x', '\n', '"') or a lifetime ('a).
                if at(index + 1) == Some('\\') {
                    index += 2;
                    while at(index).is_some_and(|char| char != '\'') {
                        index += 1;
                    }
                    index += 1;
                } else if at(index + 2) == Some('\'') {
                    index += 3;
                } else {
                    index += 1;
                }
            }
            char if char.is_alphanumeric() || char == '_' => {
                let start = index;
                while at(index).is_some_and(|char| char.is_alphanumeric() || char == '_') {
                    index += 1;
                }
                let word: String = chars[start..index].iter().collect();
                let raw = matches!(word.as_str(), "r" | "br" | "cr")
                    && matches!(at(index), Some('"' | '#'));
                if raw {
                    let mut hashes = 0;
                    while at(index) == Some('#') {
                        hashes += 1;
                        index += 1;
                    }
                    if at(index) != Some('"') {
                        // `r#ident`: a raw identifier, not a string.
                        continue;
                    }
                    index += 1;
                    let start_line = line;
                    let mut text = String::new();
                    while let Some(char) = at(index) {
                        let closes = char == '"'
                            && (1..=hashes).all(|offset| at(index + offset) == Some('#'));
                        if closes {
                            index += 1 + hashes;
                            break;
                        }
                        line += usize::from(char == '\n');
                        text.push(char);
                        index += 1;
                    }
                    out.push(Token::Literal {
                        text,
                        line: start_line,
                    });
                } else if !(matches!(word.as_str(), "b" | "c") && at(index) == Some('"')) {
                    // `b"..."` and `c"..."` fall through to the string arm next round.
                    out.push(Token::Word(word));
                }
            }
            char if char.is_whitespace() => index += 1,
            char => {
                out.push(Token::Punct(char));
                index += 1;
            }
        }
    }
    out
}

fn punct(tokens: &[Token], index: usize, char: char) -> bool {
    tokens.get(index) == Some(&Token::Punct(char))
}

fn word(tokens: &[Token], index: usize, text: &str) -> bool {
    matches!(tokens.get(index), Some(Token::Word(word)) if word == text)
}

/// The index just past the bracketed group opening at `index` (`open` .. `close`).
fn past_group(tokens: &[Token], mut index: usize, open: char, close: char) -> usize {
    let mut depth = 0usize;
    while index < tokens.len() {
        if punct(tokens, index, open) {
            depth += 1;
        } else if punct(tokens, index, close) {
            depth -= 1;
            if depth == 0 {
                return index + 1;
            }
        }
        index += 1;
    }
    index
}

/// When an attribute starting at `index` is `#[cfg(test)]` or `#[cfg(all(.., test, ..))]`
/// (an item compiled only for tests), the index just past it.
fn test_only_attribute(tokens: &[Token], index: usize) -> Option<usize> {
    let cfg = punct(tokens, index, '#')
        && punct(tokens, index + 1, '[')
        && word(tokens, index + 2, "cfg")
        && punct(tokens, index + 3, '(');
    if !cfg {
        return None;
    }
    let past = past_group(tokens, index + 1, '[', ']');
    let test_only = if word(tokens, index + 4, "test") {
        punct(tokens, index + 5, ')')
    } else if word(tokens, index + 4, "all") && punct(tokens, index + 5, '(') {
        // `test` as a direct argument of `all(...)`.
        let mut depth = 0usize;
        let mut found = false;
        for token in &tokens[index + 5..past] {
            match token {
                Token::Punct('(') => depth += 1,
                Token::Punct(')') => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                Token::Word(word) if depth == 1 && word == "test" => found = true,
                _ => {}
            }
        }
        found
    } else {
        false
    };
    test_only.then_some(past)
}

/// The literals of code compiled outside tests, and the names of the test-only module
/// files this file declares (`#[cfg(test)] mod name;`).
fn production_literals(tokens: &[Token]) -> (Vec<(String, usize)>, Vec<String>) {
    let mut literals = Vec::new();
    let mut test_modules = Vec::new();
    let mut index = 0;
    while index < tokens.len() {
        if let Some(past) = test_only_attribute(tokens, index) {
            index = past;
            // Further attributes of the same item.
            while punct(tokens, index, '#') && punct(tokens, index + 1, '[') {
                index = past_group(tokens, index + 1, '[', ']');
            }
            // The item: up to its `;`, or through its braced body.
            while index < tokens.len() {
                if word(tokens, index, "mod")
                    && punct(tokens, index + 2, ';')
                    && let Some(Token::Word(name)) = tokens.get(index + 1)
                {
                    test_modules.push(name.clone());
                }
                if punct(tokens, index, ';') {
                    index += 1;
                    break;
                }
                if punct(tokens, index, '{') {
                    index = past_group(tokens, index, '{', '}');
                    break;
                }
                index += 1;
            }
            continue;
        }
        if let Token::Literal { text, line } = &tokens[index] {
            literals.push((text.clone(), *line));
        }
        index += 1;
    }
    (literals, test_modules)
}

/// Where the child modules of the module in `file` live.
fn module_dir(file: &Path) -> PathBuf {
    let parent = file.parent().expect("a source file has a directory");
    match file.file_name().and_then(|name| name.to_str()) {
        Some("mod.rs" | "lib.rs" | "main.rs") => parent.to_path_buf(),
        _ => parent.join(file.file_stem().expect("a source file has a name")),
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    // seam-ok: a test reading the source tree, not server code.
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            out.push(path);
        }
    }
}

/// Every literal in `root` (outside `root/storage/` and test code) that starts with a
/// registered prefix and is not an allowed API path, as `path:line: "literal"`.
fn violations(root: &Path, prefixes: &[&str]) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let storage = root.join("storage");
    let mut parsed = Vec::new();
    let mut test_only = BTreeSet::new();
    for file in files {
        // seam-ok: a test reading the source tree, not server code.
        let source = std::fs::read_to_string(&file)
            .unwrap_or_else(|error| panic!("{}: {error}", file.display()));
        let (literals, test_modules) = production_literals(&tokens(&source));
        for name in test_modules {
            let dir = module_dir(&file);
            test_only.insert(dir.join(format!("{name}.rs")));
            test_only.insert(dir.join(&name));
        }
        parsed.push((file, literals));
    }
    let mut found = Vec::new();
    for (file, literals) in parsed {
        let skipped = file.starts_with(&storage)
            || test_only
                .iter()
                .any(|test_path| file == *test_path || file.starts_with(test_path));
        if skipped {
            continue;
        }
        for (literal, line) in literals {
            let keylike = prefixes.iter().any(|prefix| literal.starts_with(prefix));
            if keylike && !allowed(&literal) {
                found.push(format!("{}:{line}: {literal:?}", file.display()));
            }
        }
    }
    found
}

fn registered_prefixes() -> Vec<&'static str> {
    super::REGISTRY
        .iter()
        .map(|registration| registration.prefix)
        .collect()
}

#[test]
fn no_storage_key_literal_outside_the_key_space() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&root, &registered_prefixes());
    assert!(
        found.is_empty(),
        "storage keys are built only through `storage::key_space` (add a constant or a \
         constructor there), or the literal is an API path to list, with its reason, in \
         `API_PATHS`:\n{}",
        found.join("\n")
    );
}

#[test]
fn every_allowed_api_path_says_why() {
    for (path, _, reason) in API_PATHS {
        assert!(reason.len() > 20, "{path:?} needs a reason");
    }
}

#[test]
fn the_lexer_finds_literals_and_skips_comments_chars_and_test_items() {
    let source = r####"
        // "core/keyring" in a comment
        /* "logical/x/" /* nested */ "logical/y/" */
        const A: &str = "sys/policy/a"; let q = '"'; let e = '\''; fn f<'a>() {}
        let raw = r#"logical/u/ with "quotes""#; let bytes = b"sys/token/id";
        let escaped = "say \"hi\"";
        #[cfg(test)]
        mod tests { const B: &str = "logical/test/"; }
        #[cfg(test)]
        mod more;
        #[cfg(all(test, not(madsim)))]
        mod gated;
        #[cfg(any(test, fuzzing))]
        const D: &str = "sys/wrapping/d";
        #[cfg(all(not(test), unix))]
        const E: &str = "sys/wrapping/e";
        #[cfg(test)]
        #[allow(dead_code)]
        fn helper() -> &'static str { "sys/expire/x" }
        const C: &str = "core/keyring";
    "####;
    let (literals, test_modules) = production_literals(&tokens(source));
    let texts: Vec<&str> = literals.iter().map(|(text, _)| text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "sys/policy/a",
            "logical/u/ with \"quotes\"",
            "sys/token/id",
            "say \\\"hi\\\"",
            "sys/wrapping/d",
            "sys/wrapping/e",
            "core/keyring"
        ]
    );
    assert_eq!(literals[0].1, 4);
    assert_eq!(literals[6].1, 20);
    assert_eq!(test_modules, ["more", "gated"]);
}

#[test]
fn api_paths_pass_and_keys_do_not() {
    for literal in [
        "auth/token/create",
        "auth/{}",
        "auth/{mount}/login/{username}",
        "auth/",
        "identity/",
        "sys/wrapping/unwrap",
    ] {
        assert!(allowed(literal), "{literal}");
    }
    for literal in [
        "auth/6a1c2f0e/",
        "auth/u/user/bob",
        "auth/{}/",
        "identity/entity/id/e1",
        "sys/wrapping/jwtkey",
        "sys/token/id/x",
        "core/keyring",
    ] {
        assert!(!allowed(literal), "{literal}");
    }
}
