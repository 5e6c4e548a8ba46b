//! Help text and the command tree: every command and subcommand is one [`CommandDoc`]
//! with a description, usage, examples and its flags grouped under Vault's headings.
//! The same document decides which flags a command parses ([`CommandDoc::parse`]), so
//! `-h` cannot list a flag the command refuses, nor omit one it accepts.
//!
//! Everything here is pure: it turns documents into text, and a mistyped name into the
//! nearest known one.

use super::Failure;
use super::args::{FlagGroup, FlagKind, FlagSpec, ParsedArgs, parse_args};
use super::format::{wrap_at_length, wrap_with_padding};

/// One command or subcommand, by its full path below `arca` (`"kv metadata put"`).
#[derive(Debug, Clone, Copy)]
pub struct CommandDoc {
    pub path: &'static str,
    /// One line for the parent's list of subcommands.
    pub synopsis: &'static str,
    /// What follows `Usage: arca ` (`kv put [options] KEY [DATA]`).
    pub usage: &'static str,
    /// Paragraphs separated by blank lines; wrapped when printed.
    pub description: &'static str,
    /// Command lines shown under "Examples", without the `$ ` prompt.
    pub examples: &'static [&'static str],
    pub groups: &'static [FlagGroup],
}

impl CommandDoc {
    /// The flag sets of every group, in order, for the parser.
    pub fn flag_sets(&self) -> Vec<&'static [FlagSpec]> {
        self.groups.iter().map(|group| group.flags).collect()
    }

    /// Parse `args` against exactly the flags this document lists.
    pub fn parse(&self, args: &[String]) -> Result<ParsedArgs, Failure> {
        parse_args(args, &self.flag_sets()).map_err(Failure::Usage)
    }

    /// The last word of the path: the name a parent lists it under.
    pub fn name(&self) -> &'static str {
        self.path.rsplit(' ').next().unwrap_or(self.path)
    }

    /// The parent's path, or `""` for a top-level command.
    pub fn parent(&self) -> &'static str {
        self.path.rsplit_once(' ').map_or("", |(parent, _)| parent)
    }
}

/// The subcommands directly below `parent` (`""` for the top level), in catalog order.
pub fn children<'a>(
    catalog: &'a [CommandDoc],
    parent: &'a str,
) -> impl Iterator<Item = &'a CommandDoc> + 'a {
    catalog.iter().filter(move |doc| doc.parent() == parent)
}

/// The document at exactly `path`.
pub fn find<'a>(catalog: &'a [CommandDoc], path: &str) -> Option<&'a CommandDoc> {
    catalog.iter().find(|doc| doc.path == path)
}

/// The deepest document named by the leading words of `words`: `["kv", "put", "x"]`
/// finds `kv put`. Words that start with `-` are flags and are skipped.
pub fn deepest<'a>(catalog: &'a [CommandDoc], words: &[String]) -> Option<&'a CommandDoc> {
    let mut found = None;
    let mut path = String::new();
    for word in words.iter().filter(|word| !word.starts_with('-')) {
        if !path.is_empty() {
            path.push(' ');
        }
        path.push_str(word);
        match find(catalog, &path) {
            Some(doc) => found = Some(doc),
            None => break,
        }
    }
    found
}

/// The flag as Vault's `printFlagDetail` shows it: `  -name=<example>` (or `  -name` for
/// a boolean), then its usage wrapped under a six-space indent, with the default and the
/// environment variable spelled out.
pub fn flag_text(flag: &FlagSpec) -> String {
    let mut head = format!("  -{}", flag.name());
    if flag.kind == FlagKind::Value {
        head.push_str(&format!("=<{}>", flag.example));
    }
    let mut usage = flag.usage.to_string();
    if !flag.default.is_empty() {
        usage.push_str(&format!(" The default is {}.", flag.default));
    }
    if !flag.environment.is_empty() {
        usage.push_str(&format!(
            " This can also be specified via the {} environment variable.",
            flag.environment
        ));
    }
    if flag.names.len() > 1 {
        let aliases: Vec<String> = flag.names[1..]
            .iter()
            .map(|alias| format!("-{alias}"))
            .collect();
        usage.push_str(&format!(" Also spelled {}.", aliases.join(", ")));
    }
    format!("{head}\n{}", wrap_with_padding(&usage, 6))
}

/// A group of flags under its heading, as Vault's `FlagSets.Help` prints it.
pub fn group_text(group: &FlagGroup) -> String {
    let mut text = format!("{}:\n", group.title);
    for flag in group.flags {
        text.push('\n');
        text.push_str(&flag_text(flag));
        text.push('\n');
    }
    text
}

/// A list of names and synopses, padded to the longest name.
fn listing(entries: &[(&str, &str)]) -> String {
    let width = entries
        .iter()
        .map(|(name, _)| name.chars().count())
        .max()
        .unwrap_or(0);
    entries
        .iter()
        .map(|(name, synopsis)| format!("    {name:<width$}    {synopsis}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The full help for `doc`: usage, description, examples, subcommands, flag groups.
pub fn command_help(catalog: &[CommandDoc], doc: &CommandDoc) -> String {
    let mut sections = vec![format!("Usage: arca {}", doc.usage)];
    for paragraph in doc.description.split("\n\n") {
        sections.push(wrap_with_padding(paragraph, 2));
    }
    if !doc.examples.is_empty() {
        let lines: Vec<String> = doc
            .examples
            .iter()
            .map(|example| format!("      $ arca {example}"))
            .collect();
        sections.push(format!("  Examples:\n\n{}", lines.join("\n")));
    }
    let subcommands: Vec<(&str, &str)> = children(catalog, doc.path)
        .map(|child| (child.name(), child.synopsis))
        .collect();
    if !subcommands.is_empty() {
        sections.push(format!("Subcommands:\n{}", listing(&subcommands)));
    }
    if !doc.groups.is_empty() {
        sections.push(wrap_at_length(
            "Additional flags and more advanced use cases are detailed below.",
        ));
        for group in doc.groups {
            sections.push(group_text(group).trim_end().to_string());
        }
    }
    sections.join("\n\n")
}

/// The top-level help: Vault's two groups of commands.
pub fn main_help(catalog: &[CommandDoc], common: &[&str]) -> String {
    let top: Vec<&CommandDoc> = children(catalog, "").collect();
    let pick = |want_common: bool| -> Vec<(&str, &str)> {
        let mut entries: Vec<(&str, &str)> = top
            .iter()
            .filter(|doc| common.contains(&doc.path) == want_common)
            .map(|doc| (doc.path, doc.synopsis))
            .collect();
        entries.sort_by_key(|(name, _)| *name);
        entries
    };
    format!(
        "Usage: arca <command> [args]\n\nCommon commands:\n{}\n\nOther commands:\n{}",
        listing(&pick(true)),
        listing(&pick(false))
    )
}

/// Edit distance (insertions, deletions, substitutions) between two short words.
fn edit_distance(left: &str, right: &str) -> usize {
    let right: Vec<char> = right.chars().collect();
    let mut previous: Vec<usize> = (0..=right.len()).collect();
    for (row, left_char) in left.chars().enumerate() {
        let mut current = vec![row + 1];
        for (column, right_char) in right.iter().enumerate() {
            let substitution = previous[column] + usize::from(left_char != *right_char);
            current.push(
                substitution
                    .min(previous[column + 1] + 1)
                    .min(current[column] + 1),
            );
        }
        previous = current;
    }
    previous[right.len()]
}

/// How far a typo may be from a name and still be suggested: a third of the typed
/// length, at least two edits (so `wirte` and `lsit` find their commands).
fn suggestion_distance_max(typed: &str) -> usize {
    (typed.chars().count() / 3).max(2)
}

/// The known name nearest to `typed`, if one is close enough; ties go to the first in
/// `names` (catalog order, which is fixed).
pub fn nearest<'a>(typed: &str, names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = suggestion_distance_max(typed);
    let mut best: Option<(usize, &str)> = None;
    for name in names {
        let distance = if name.starts_with(typed) && typed.len() >= 2 {
            // A prefix (`arca lis`) is as good as one edit.
            1
        } else {
            edit_distance(typed, name)
        };
        if distance <= limit && best.is_none_or(|(found, _)| distance < found) {
            best = Some((distance, name));
        }
    }
    best.map(|(_, name)| name)
}

/// The text for an unknown subcommand of `parent`: the suggestion, then the parent's help.
pub fn unknown_subcommand(catalog: &[CommandDoc], parent: &str, typed: &str) -> String {
    let names = children(catalog, parent).map(CommandDoc::name);
    let mut text = match parent {
        "" => format!("Unknown command: {typed}"),
        _ => format!("Unknown {parent} subcommand: {typed}"),
    };
    if let Some(name) = nearest(typed, names) {
        text.push_str(&format!("\n\nDid you mean \"{name}\"?"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args::{bool_flag, value_flag};

    const MOUNT: &[FlagSpec] = &[value_flag(&["mount"])
        .usage("Where the engine is mounted.")
        .default_value("the first path segment")];
    const FORCE: &[FlagSpec] = &[bool_flag(&["force", "f"]).usage("Do it.")];
    const CATALOG: &[CommandDoc] = &[
        CommandDoc {
            path: "kv",
            synopsis: "Key/value commands",
            usage: "kv <subcommand> [options] [args]",
            description: "Groups the key/value commands.",
            examples: &[],
            groups: &[],
        },
        CommandDoc {
            path: "kv put",
            synopsis: "Sets or updates data",
            usage: "kv put [options] KEY [DATA]",
            description: "Writes the data.\n\nA second paragraph.",
            examples: &["kv put -mount=secret foo bar=baz"],
            groups: &[
                FlagGroup {
                    title: "Common Options",
                    flags: MOUNT,
                },
                FlagGroup {
                    title: "Command Options",
                    flags: FORCE,
                },
            ],
        },
        CommandDoc {
            path: "kv get",
            synopsis: "Retrieves data",
            usage: "kv get [options] KEY",
            description: "Reads the data.",
            examples: &[],
            groups: &[],
        },
    ];

    #[test]
    fn a_flag_shows_its_example_default_and_aliases() {
        assert_eq!(
            flag_text(&MOUNT[0]),
            "  -mount=<string>\n      Where the engine is mounted. The default is the first path segment."
        );
        assert_eq!(
            flag_text(&FORCE[0]),
            "  -force\n      Do it. The default is false. Also spelled -f."
        );
    }

    #[test]
    fn command_help_reads_top_to_bottom() {
        let help = command_help(CATALOG, find(CATALOG, "kv put").unwrap());
        assert_eq!(
            help,
            "Usage: arca kv put [options] KEY [DATA]\n\n  Writes the data.\n\n  A second paragraph.\n\n  Examples:\n\n      $ arca kv put -mount=secret foo bar=baz\n\nAdditional flags and more advanced use cases are detailed below.\n\nCommon Options:\n\n  -mount=<string>\n      Where the engine is mounted. The default is the first path segment.\n\nCommand Options:\n\n  -force\n      Do it. The default is false. Also spelled -f."
        );
        let parent = command_help(CATALOG, find(CATALOG, "kv").unwrap());
        assert!(
            parent.ends_with(
                "Subcommands:\n    put    Sets or updates data\n    get    Retrieves data"
            ),
            "{parent}"
        );
    }

    #[test]
    fn the_deepest_known_path_wins() {
        let words: Vec<String> = ["kv", "put", "-h", "secret/x"]
            .iter()
            .map(|word| word.to_string())
            .collect();
        assert_eq!(deepest(CATALOG, &words).unwrap().path, "kv put");
        assert!(deepest(CATALOG, &["nope".to_string()]).is_none());
    }

    #[test]
    fn typos_find_the_nearest_name() {
        let names = ["read", "write", "list", "delete", "login", "lease"];
        assert_eq!(nearest("wirte", names), Some("write"));
        assert_eq!(nearest("lsit", names), Some("list"));
        assert_eq!(nearest("delet", names), Some("delete"));
        assert_eq!(nearest("xyzzy", names), None);
        assert_eq!(
            unknown_subcommand(CATALOG, "kv", "pput"),
            "Unknown kv subcommand: pput\n\nDid you mean \"put\"?"
        );
        assert_eq!(
            unknown_subcommand(CATALOG, "kv", "zzzzzz"),
            "Unknown kv subcommand: zzzzzz"
        );
    }

    #[test]
    fn parsing_accepts_exactly_the_documented_flags() {
        let doc = find(CATALOG, "kv put").unwrap();
        let parsed = doc
            .parse(&["-mount=kv".to_string(), "-f".to_string()])
            .unwrap();
        assert_eq!(parsed.value("mount"), Some("kv"));
        assert!(parsed.flag("force"));
        assert_eq!(
            doc.parse(&["-cas=1".to_string()]).unwrap_err(),
            Failure::Usage("flag provided but not defined: -cas".to_string())
        );
    }
}
