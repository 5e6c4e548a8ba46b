//! Vault reads its server configuration and its policies with HCL 1, which takes a
//! one-line block holding several attributes (`listener "tcp" { address = "..." tls_disable
//! = 1 }`) and commas between a block's attributes. HCL 2, which hcl-rs parses, allows at
//! most one attribute in a one-line block and no commas between attributes.
//!
//! [`to_hcl2_layout`] rewrites just those spots into HCL 2's layout before parsing, by
//! turning one space, tab or comma into a newline. No byte moves, so every span and
//! error offset the parser reports still points at the same place in the text the
//! operator wrote; count lines in that text, not in the rewritten one. Text the rewrite
//! does not follow (unbalanced brackets, an unterminated string) comes back unchanged,
//! for the parser to report.

use std::borrow::Cow;

/// The text with every body item on its own line and every block body that holds more
/// than one item (or a nested block) opened and closed on lines of its own.
pub fn to_hcl2_layout(text: &str) -> Cow<'_, str> {
    match Rewriter::new(text).run() {
        Some(bytes) if bytes != text.as_bytes() => match String::from_utf8(bytes) {
            Ok(rewritten) => Cow::Owned(rewritten),
            // Only ASCII bytes are replaced by ASCII, so this does not happen; the
            // original text is the safe answer if it ever did.
            Err(_) => Cow::Borrowed(text),
        },
        _ => Cow::Borrowed(text),
    }
}

/// The blank space between two tokens.
#[derive(Debug, Clone, Copy, Default)]
struct Gap {
    has_newline: bool,
    /// A space or tab that may become the newline the gap needs.
    blank_at: Option<usize>,
}

/// Where a block body is within its current item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ItemState {
    /// Before an item (at the start, or after a comma).
    Start,
    /// After the item's name, among its labels.
    Header,
    /// In an attribute's value; whether the last token could end it.
    Value { operand_ended: bool },
    /// Right after a nested block's closing brace.
    AfterBlock,
}

#[derive(Debug)]
struct BodyFrame {
    /// The gap after `{`; `None` for the file's own body and until the first token.
    open_gap: Option<Gap>,
    is_root: bool,
    items: usize,
    has_block: bool,
    rewrote: bool,
    state: ItemState,
}

#[derive(Debug)]
enum Frame {
    Body(BodyFrame),
    /// An object, tuple or parenthesis inside a value: its insides are left alone.
    Expression,
}

struct Rewriter<'a> {
    text: &'a [u8],
    out: Vec<u8>,
    stack: Vec<Frame>,
    gap: Gap,
}

/// A token, as far as the layout cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Identifier,
    /// A string, heredoc or number.
    Literal,
    Assign,
    Operator,
    Comma,
    Open(u8),
    Close(u8),
}

impl<'a> Rewriter<'a> {
    fn new(text: &'a str) -> Self {
        Rewriter {
            text: text.as_bytes(),
            out: text.as_bytes().to_vec(),
            stack: vec![Frame::Body(BodyFrame {
                open_gap: Some(Gap {
                    has_newline: true,
                    blank_at: None,
                }),
                is_root: true,
                items: 0,
                has_block: false,
                rewrote: false,
                state: ItemState::Start,
            })],
            gap: Gap::default(),
        }
    }

    /// The rewritten bytes, or `None` where the text is not followed.
    fn run(mut self) -> Option<Vec<u8>> {
        let text = self.text;
        let mut index = 0;
        while index < text.len() {
            let byte = text[index];
            let next = text.get(index + 1).copied();
            let (token, end) = match byte {
                b' ' | b'\t' | b'\r' => {
                    self.gap.blank_at.get_or_insert(index);
                    index += 1;
                    continue;
                }
                b'\n' => {
                    self.gap.has_newline = true;
                    index += 1;
                    continue;
                }
                b'#' => {
                    index = line_end(text, index);
                    continue;
                }
                b'/' if next == Some(b'/') => {
                    index = line_end(text, index);
                    continue;
                }
                b'/' if next == Some(b'*') => {
                    let close = find(text, index + 2, b"*/")?;
                    if text[index..close].contains(&b'\n') {
                        self.gap.has_newline = true;
                    }
                    index = close + 2;
                    continue;
                }
                b'"' => (Token::Literal, skip_quoted(text, index)?),
                b'<' if next == Some(b'<') && heredoc_follows(text, index) => {
                    (Token::Literal, skip_heredoc(text, index)?)
                }
                b'0'..=b'9' => (
                    Token::Literal,
                    scan_while(text, index, |byte| {
                        byte.is_ascii_alphanumeric() || byte == b'.' || byte == b'_'
                    }),
                ),
                byte if byte.is_ascii_alphabetic() || byte == b'_' || byte >= 0x80 => (
                    Token::Identifier,
                    scan_while(text, index, |byte| {
                        byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' || byte >= 0x80
                    }),
                ),
                b'{' | b'[' | b'(' => (Token::Open(byte), index + 1),
                b'}' | b']' | b')' => (Token::Close(byte), index + 1),
                b',' => (Token::Comma, index + 1),
                b'=' if next != Some(b'=') && next != Some(b'>') => (Token::Assign, index + 1),
                _ => (Token::Operator, index + 1),
            };
            self.on_token(token, index)?;
            self.gap = Gap::default();
            index = end;
        }
        match self.stack.as_slice() {
            [Frame::Body(root)] if root.is_root => Some(self.out),
            _ => None,
        }
    }

    fn on_token(&mut self, token: Token, at: usize) -> Option<()> {
        let gap = self.gap;
        let Some(Frame::Body(body)) = self.stack.last_mut() else {
            // Inside an expression only brackets matter.
            match token {
                Token::Open(_) => self.stack.push(Frame::Expression),
                Token::Close(_) => self.close_expression(),
                _ => {}
            }
            return Some(());
        };
        if body.open_gap.is_none() {
            body.open_gap = Some(gap);
        }
        let mut needs_newline = false;
        match (body.state, token) {
            (ItemState::Start, Token::Identifier | Token::Literal) => {
                body.items += 1;
                body.state = ItemState::Header;
            }
            (ItemState::Header, Token::Identifier | Token::Literal) => {}
            (ItemState::Header, Token::Assign) => {
                body.state = ItemState::Value {
                    operand_ended: false,
                };
            }
            (ItemState::Header, Token::Open(b'{')) => {
                body.has_block = true;
                body.state = ItemState::AfterBlock;
                self.stack.push(Frame::Body(BodyFrame {
                    open_gap: None,
                    is_root: false,
                    items: 0,
                    has_block: false,
                    rewrote: false,
                    state: ItemState::Start,
                }));
            }
            // An identifier right after a complete value or a block starts the next
            // item: HCL 1 needs no separator there, HCL 2 a newline.
            (
                ItemState::Value {
                    operand_ended: true,
                }
                | ItemState::AfterBlock,
                Token::Identifier,
            ) => {
                needs_newline = true;
                body.items += 1;
                body.state = ItemState::Header;
            }
            (ItemState::Value { .. }, Token::Identifier | Token::Literal) => {
                body.state = ItemState::Value {
                    operand_ended: true,
                };
            }
            (ItemState::Value { .. }, Token::Operator | Token::Assign) => {
                body.state = ItemState::Value {
                    operand_ended: false,
                };
            }
            (ItemState::Value { .. }, Token::Open(_)) => self.stack.push(Frame::Expression),
            // HCL 1's comma between attributes becomes HCL 2's newline.
            (ItemState::Value { .. } | ItemState::AfterBlock, Token::Comma) => {
                self.out[at] = b'\n';
                body.rewrote = true;
                body.state = ItemState::Start;
            }
            (
                ItemState::Start | ItemState::Value { .. } | ItemState::AfterBlock,
                Token::Close(b'}'),
            ) => return self.close_body(),
            _ => return None,
        }
        if needs_newline && !gap.has_newline {
            if let Some(Frame::Body(body)) = self.stack.last_mut() {
                body.rewrote = true;
            }
            self.newline_in(gap);
        }
        Some(())
    }

    /// `}` of a block body: a body HCL 2 cannot take on one line gets its braces on
    /// lines of their own.
    fn close_body(&mut self) -> Option<()> {
        let close_gap = self.gap;
        let Some(Frame::Body(body)) = self.stack.pop() else {
            return None;
        };
        if body.is_root {
            return None;
        }
        if body.items > 1 || body.has_block || body.rewrote {
            let open_gap = body.open_gap.unwrap_or(close_gap);
            self.newline_in(open_gap);
            if body.items > 0 {
                self.newline_in(close_gap);
            }
        }
        Some(())
    }

    fn close_expression(&mut self) {
        self.stack.pop();
        if let Some(Frame::Body(body)) = self.stack.last_mut()
            && matches!(body.state, ItemState::Value { .. })
        {
            body.state = ItemState::Value {
                operand_ended: true,
            };
        }
    }

    /// Make `gap` hold a newline by turning one of its blanks into one. A gap with no
    /// blank at all (`{a = 1 b = 2}`) is left for the parser to report.
    fn newline_in(&mut self, gap: Gap) {
        if !gap.has_newline
            && let Some(at) = gap.blank_at
        {
            self.out[at] = b'\n';
        }
    }
}

fn line_end(text: &[u8], from: usize) -> usize {
    text[from..]
        .iter()
        .position(|byte| *byte == b'\n')
        .map_or(text.len(), |offset| from + offset)
}

fn find(text: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    text.get(from..)?
        .windows(needle.len())
        .position(|window| window == needle)
        .map(|offset| from + offset)
}

fn scan_while(text: &[u8], from: usize, keep: impl Fn(u8) -> bool) -> usize {
    text[from..]
        .iter()
        .position(|byte| !keep(*byte))
        .map_or(text.len(), |offset| from + offset)
}

/// Past a quoted string that starts at `start`, templates (`${...}`, `%{...}`) and the
/// strings inside them included. `None` if it does not end on its line.
fn skip_quoted(text: &[u8], start: usize) -> Option<usize> {
    enum Context {
        String,
        Template { braces: usize },
    }
    let mut stack = vec![Context::String];
    let mut index = start + 1;
    while index < text.len() {
        let byte = text[index];
        let next = text.get(index + 1).copied();
        match stack.last_mut()? {
            Context::String => match byte {
                b'\\' => index += 2,
                b'"' => {
                    stack.pop();
                    index += 1;
                    if stack.is_empty() {
                        return Some(index);
                    }
                }
                // `$${` and `%%{` are the escapes for a literal `${` and `%{`.
                b'$' | b'%' if next == Some(byte) => index += 2,
                b'$' | b'%' if next == Some(b'{') => {
                    stack.push(Context::Template { braces: 0 });
                    index += 2;
                }
                b'\n' => return None,
                _ => index += 1,
            },
            Context::Template { braces } => {
                match byte {
                    b'"' => stack.push(Context::String),
                    b'{' => *braces += 1,
                    b'}' if *braces == 0 => {
                        stack.pop();
                    }
                    b'}' => *braces -= 1,
                    _ => {}
                }
                index += 1;
            }
        }
    }
    None
}

fn heredoc_follows(text: &[u8], start: usize) -> bool {
    let mut index = start + 2;
    if text.get(index) == Some(&b'-') {
        index += 1;
    }
    text.get(index)
        .is_some_and(|byte| byte.is_ascii_alphabetic() || *byte == b'_')
}

/// Past a heredoc (`<<EOF` or `<<-EOF`, then lines, then the marker on a line of its
/// own). `None` if the marker never comes.
fn skip_heredoc(text: &[u8], start: usize) -> Option<usize> {
    let mut index = start + 2;
    if text.get(index) == Some(&b'-') {
        index += 1;
    }
    let marker_end = scan_while(text, index, |byte| {
        byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
    });
    let marker = &text[index..marker_end];
    let mut line_start = line_end(text, marker_end) + 1;
    while line_start < text.len() {
        let end = line_end(text, line_start);
        let line = &text[line_start..end];
        let trimmed = line.trim_ascii();
        if trimmed == marker {
            // The token ends with the marker; the newline after it is a gap's.
            let marker_at =
                line_start + line.iter().position(|byte| !byte.is_ascii_whitespace())?;
            return Some(marker_at + marker.len());
        }
        line_start = end + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn rewrites(text: &str, expected: &str) {
        let rewritten = to_hcl2_layout(text);
        assert_eq!(rewritten, expected);
        assert_eq!(rewritten.len(), text.len(), "no byte moves");
        hcl::edit::parser::parse_body(&rewritten).expect("HCL 2 parses the rewrite");
    }

    #[track_caller]
    fn unchanged(text: &str) {
        assert!(matches!(to_hcl2_layout(text), Cow::Borrowed(_)), "{text}");
    }

    #[test]
    fn one_line_blocks_with_several_attributes_get_a_line_each() {
        rewrites(
            r#"listener "tcp" { address = "127.0.0.1:8200" tls_disable = 1 }"#,
            "listener \"tcp\" {\naddress = \"127.0.0.1:8200\"\ntls_disable = 1\n}",
        );
        rewrites(
            r#"path "x" { capabilities = ["read", "list"] min_wrapping_ttl = "1s" }"#,
            "path \"x\" {\ncapabilities = [\"read\", \"list\"]\nmin_wrapping_ttl = \"1s\"\n}",
        );
    }

    #[test]
    fn nested_blocks_and_commas_follow_hcl1() {
        rewrites(
            r#"storage "raft" { path = "/x" retry_join { leader_api_addr = "http://a" } }"#,
            "storage \"raft\" {\npath = \"/x\"\nretry_join { leader_api_addr = \"http://a\" }\n}",
        );
        rewrites("a { b = 1, c = 2 }", "a {\nb = 1\n c = 2\n}");
        rewrites("a = 1 b = 2", "a = 1\nb = 2");
    }

    #[test]
    fn what_hcl2_already_takes_is_left_alone() {
        unchanged("listener \"tcp\" {\n  address = \"x\" # comment\n  tls_disable = 1\n}\n");
        unchanged(r#"path "x" { capabilities = ["read"] }"#);
        unchanged("x = { a = 1, b = [1, 2] }\ny = a.b + f(1, 2) ? \"${c} d\" : -1\n");
        unchanged("x = <<EOF\n  a = 1 b = 2 }\nEOF\ny = 2\n");
        unchanged("x = \"a { b\" /* c } */\nz = 1");
    }

    proptest::proptest! {
        #[test]
        fn only_blanks_and_commas_ever_become_newlines(
            text in "(path|listener|a|\"x\"|\"\\$\\{|\\{|\\}|\\[|\\]|=|,|#|//|/\\*|\\*/|<<EOF|EOF|[0-9]{1,3}|\n| |\t){0,60}"
        ) {
            let rewritten = to_hcl2_layout(&text);
            proptest::prop_assert_eq!(rewritten.len(), text.len());
            for (before, after) in text.bytes().zip(rewritten.bytes()) {
                proptest::prop_assert!(
                    before == after || (matches!(before, b' ' | b'\t' | b'\r' | b',') && after == b'\n')
                );
            }
        }
    }

    #[test]
    fn text_it_does_not_follow_comes_back_unchanged() {
        unchanged("a { b = 1 c = 2");
        unchanged("a { b = \"open c = 2 }");
        unchanged("}}} a = 1 b = 2");
        unchanged("a = [1 b = 2");
    }
}
