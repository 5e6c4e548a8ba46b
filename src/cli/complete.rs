//! Shell completion, as Vault offers it: `arca -autocomplete-install` adds
//! `complete -C /path/to/arca arca` to `~/.bashrc` (and the zsh equivalent to
//! `~/.zshrc`), after which the shell runs `arca` with `COMP_LINE` set on every <Tab>
//! and offers the words it prints: commands and subcommands from the catalog, and the
//! flags of the command typed so far. `-autocomplete-uninstall` takes the lines out.
//!
//! The completion itself and the rc-file edits are pure functions of text; only
//! [`install`] and [`uninstall`] touch files.

use super::args::FlagGroup;
use super::help::{CommandDoc, children, find};
use super::local;

/// The name the shell completes; the line `complete` registers is for it.
const COMMAND_NAME: &str = "arca";

/// Flags `arca` itself takes before any command.
const TOP_LEVEL_FLAGS: &[&str] = &[
    "-autocomplete-install",
    "-autocomplete-uninstall",
    "-help",
    "-version",
];

/// The words to offer for `line` with the cursor at byte `point` (the end when
/// `None`): the candidates for the word under the cursor, sorted, one per entry.
pub fn completions(catalog: &[CommandDoc], line: &str, point: Option<usize>) -> Vec<String> {
    let mut end = point.unwrap_or(line.len()).min(line.len());
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    let line = &line[..end];
    let mut words: Vec<&str> = line.split_whitespace().collect();
    // The word being typed: empty after a space.
    let current = if line.ends_with(char::is_whitespace) || words.is_empty() {
        ""
    } else {
        words.pop().unwrap_or("")
    };
    // The program's own name is not part of the command.
    let typed = words.get(1..).unwrap_or(&[]);
    let mut path = String::new();
    let mut doc: Option<&CommandDoc> = None;
    for word in typed.iter().filter(|word| !word.starts_with('-')) {
        let candidate = if path.is_empty() {
            word.to_string()
        } else {
            format!("{path} {word}")
        };
        match find(catalog, &candidate) {
            Some(found) => {
                path = candidate;
                doc = Some(found);
            }
            // A positional argument: the command is complete.
            None => break,
        }
    }
    let mut candidates: Vec<String> = if current.starts_with('-') {
        match doc {
            None => TOP_LEVEL_FLAGS
                .iter()
                .map(|flag| flag.to_string())
                .collect(),
            Some(doc) => flag_names(doc.groups),
        }
    } else if typed.iter().any(|word| !word.starts_with('-'))
        && doc.is_none_or(|doc| children(catalog, doc.path).next().is_none())
    {
        // Below a leaf command (or an unknown word) come its arguments, which are the
        // user's own: nothing to offer.
        Vec::new()
    } else {
        children(catalog, &path)
            .map(|child| child.name().to_string())
            .collect()
    };
    candidates.retain(|candidate| candidate.starts_with(current));
    candidates.sort();
    candidates.dedup();
    candidates
}

fn flag_names(groups: &[FlagGroup]) -> Vec<String> {
    groups
        .iter()
        .flat_map(|group| group.flags.iter())
        .flat_map(|flag| flag.names.iter())
        .map(|name| format!("-{name}"))
        .collect()
}

/// A shell whose rc file gets the completion lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    Bash,
    Zsh,
}

impl Shell {
    const ALL: [Shell; 2] = [Shell::Bash, Shell::Zsh];

    fn rc_file(self) -> &'static str {
        match self {
            Shell::Bash => ".bashrc",
            Shell::Zsh => ".zshrc",
        }
    }

    /// The lines installed, in order; the last is the one that registers `arca`.
    pub fn lines(self, binary: &str) -> Vec<String> {
        match self {
            Shell::Bash => vec![format!("complete -C {binary} {COMMAND_NAME}")],
            // zsh runs bash completions through bashcompinit.
            Shell::Zsh => vec![
                "autoload -U +X bashcompinit && bashcompinit".to_string(),
                format!("complete -o nospace -C {binary} {COMMAND_NAME}"),
            ],
        }
    }
}

/// `text` (an rc file) with `shell`'s lines added; an error when completion for
/// `arca` is already registered there.
pub fn with_completion(text: &str, shell: Shell, binary: &str) -> Result<String, String> {
    let lines = shell.lines(binary);
    let registration = lines.last().expect("every shell has a registration line");
    if text.lines().any(|line| line.trim() == registration) {
        return Err("already installed".to_string());
    }
    let mut out = text.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    for line in &lines {
        // zsh's bashcompinit line may be there already, for another program.
        if !text.lines().any(|existing| existing.trim() == line) {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

/// `text` without `shell`'s registration line (zsh's bashcompinit line stays: other
/// programs may use it); an error when it is not there.
pub fn without_completion(text: &str, shell: Shell, binary: &str) -> Result<String, String> {
    let lines = shell.lines(binary);
    let registration = lines.last().expect("every shell has a registration line");
    if !text.lines().any(|line| line.trim() == registration) {
        return Err("not installed".to_string());
    }
    let mut out: String = text
        .lines()
        .filter(|line| line.trim() != registration)
        .map(|line| format!("{line}\n"))
        .collect();
    if !text.ends_with('\n') && out.ends_with('\n') {
        out.pop();
    }
    Ok(out)
}

/// Edit the rc file of every shell that has one under `home`.
fn edit_rc_files(
    home: &str,
    edit: impl Fn(&str, Shell) -> Result<String, String>,
) -> Result<(), String> {
    let mut found = false;
    let mut errors = Vec::new();
    for shell in Shell::ALL {
        let path = std::path::Path::new(home).join(shell.rc_file());
        if !path.exists() {
            continue;
        }
        found = true;
        let path_text = path.display().to_string();
        let result = local::read_file(&path_text)
            .and_then(|text| edit(&text, shell))
            .and_then(|text| local::write_file(&path_text, &text));
        if let Err(error) = result {
            errors.push(format!("{error} in {path_text}"));
        }
    }
    if !found {
        return Err("Did not find any shells to install".to_string());
    }
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    Ok(())
}

/// `-autocomplete-install`: register `binary` as `arca`'s completer.
pub fn install(home: &str, binary: &str) -> Result<(), String> {
    edit_rc_files(home, |text, shell| with_completion(text, shell, binary))
}

/// `-autocomplete-uninstall`: take the registration out again.
pub fn uninstall(home: &str, binary: &str) -> Result<(), String> {
    edit_rc_files(home, |text, shell| without_completion(text, shell, binary))
}

#[cfg(test)]
mod tests {
    use super::super::commands::catalog::CATALOG;
    use super::*;

    fn complete(line: &str) -> Vec<String> {
        completions(CATALOG, line, None)
    }

    #[test]
    fn commands_subcommands_and_flags_complete_from_the_catalog() {
        assert_eq!(complete("arca ope"), ["operator"]);
        assert_eq!(complete("arca ver"), ["version", "version-history"]);
        assert!(complete("arca ").contains(&"kv".to_string()));
        assert_eq!(complete("arca operator me"), ["members"]);
        assert_eq!(complete("arca operator raft snapshot s"), ["save"]);
        assert_eq!(
            complete("arca kv metadata "),
            ["delete", "get", "patch", "put"]
        );
        assert_eq!(
            complete("arca monitor -log-"),
            ["-log-format", "-log-level"]
        );
        assert!(complete("arca kv put -").contains(&"-cas".to_string()));
        assert!(complete("arca kv put -").contains(&"-address".to_string()));
        assert_eq!(
            complete("arca -auto"),
            ["-autocomplete-install", "-autocomplete-uninstall"]
        );
        // Flags between words do not stop the walk; arguments end it.
        assert_eq!(complete("arca kv -mount=secret met"), ["metadata"]);
        assert!(complete("arca read secret/").is_empty());
        assert!(complete("arca nosuch ").is_empty());
        // The cursor decides which word is completed.
        assert_eq!(completions(CATALOG, "arca ope kv", Some(8)), ["operator"]);
    }

    #[test]
    fn rc_files_gain_and_lose_the_registration_once() {
        let bashrc = "export PATH=$PATH:/opt/bin\n";
        let installed = with_completion(bashrc, Shell::Bash, "/usr/bin/arca").unwrap();
        assert_eq!(
            installed,
            "export PATH=$PATH:/opt/bin\ncomplete -C /usr/bin/arca arca\n"
        );
        assert_eq!(
            with_completion(&installed, Shell::Bash, "/usr/bin/arca").unwrap_err(),
            "already installed"
        );
        assert_eq!(
            without_completion(&installed, Shell::Bash, "/usr/bin/arca").unwrap(),
            bashrc
        );
        assert_eq!(
            without_completion(bashrc, Shell::Bash, "/usr/bin/arca").unwrap_err(),
            "not installed"
        );
        let zshrc = with_completion("", Shell::Zsh, "/usr/bin/arca").unwrap();
        assert_eq!(
            zshrc,
            "autoload -U +X bashcompinit && bashcompinit\ncomplete -o nospace -C /usr/bin/arca arca\n"
        );
        assert_eq!(
            without_completion(&zshrc, Shell::Zsh, "/usr/bin/arca").unwrap(),
            "autoload -U +X bashcompinit && bashcompinit\n"
        );
    }
}
