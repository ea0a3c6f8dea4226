//! `meshfs.toml`: the node's flags written down once, for a service that starts at boot.
//!
//! The file holds top-level keys named like the flags of `meshfs node` without their leading
//! `--` (`listen = "0.0.0.0:4044"`, `idle-timeout = "10m"`, `no-web = true`,
//! `peer = ["cam1:4044", "cam2:4044"]`), plus `dir` for the served folder. The keys are looked
//! up in clap's own description of the command, never in a second list: a flag added to
//! `meshfs node` can be set here the day it is added, with the same parser and the same help.
//!
//! Precedence is flag, then environment, then file, then default. The file's values are turned
//! back into command-line words and parsed again together with the real ones, but only for the
//! flags whose value clap says came from a default ([`clap::ArgMatches::value_source`]): what
//! the command line or the environment set is never overridden, and every rule clap enforces
//! between flags (conflicts, `requires`) applies to the file too.
//!
//! Errors name the file, the line and the key: an unknown key, a value of the wrong TOML type,
//! or a value the flag's own parser refuses. Secrets never live here: flags that take a
//! password take the path of a file that holds it (`password-file`, `offer = "PATH:FILE"`).

use std::ffi::OsString;
use std::ops::Range;
use std::path::{Path, PathBuf};

use clap::builder::Resettable;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};
use toml::de::{DeTable, DeValue};

/// Where a system service reads its configuration (the packaged unit passes it explicitly).
pub const SYSTEM_PATH: &str = "/etc/meshfs/meshfs.toml";

/// Largest configuration file read: a few hundred lines of flags are a few KiB.
const MAX_FILE: u64 = 1 << 20;

/// Flags that a configuration file cannot set: the file's own path, and what is no setting.
const NOT_SETTINGS: &[&str] = &["config", "help", "version"];

/// What is wrong with a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: the file is larger than {MAX_FILE} bytes: not a meshfs configuration file")]
    TooLarge { path: PathBuf },
    #[error("{path}:{line}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error(
        "{path}:{line}: unknown key `{key}`: keys are the flags of `meshfs node` without their \
         leading -- (see `meshfs node --help`), and `dir` for the served folder"
    )]
    UnknownKey {
        path: PathBuf,
        line: usize,
        key: String,
    },
    #[error("{path}:{line}: key `{key}`: {reason}")]
    BadValue {
        path: PathBuf,
        line: usize,
        key: String,
        reason: String,
    },
}

/// One setting read from the file: the flag it sets and the command-line words that set it.
#[derive(Debug, Clone)]
struct Setting {
    /// The flag's clap id (what `value_source` is asked about).
    id: String,
    /// `--long=value` words, or the bare value for the positional `dir`.
    words: Vec<OsString>,
    /// Whether `words` is the positional argument.
    positional: bool,
}

/// A configuration file read and checked against a command's flags.
#[derive(Debug, Clone)]
pub struct Settings {
    settings: Vec<Setting>,
}

impl Settings {
    /// Read `path` and check every key and value against `command`'s flags.
    pub fn load(path: &Path, command: &Command) -> Result<Settings, ConfigError> {
        let read = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read)?;
        let mut text = String::new();
        use std::io::Read;
        file.take(MAX_FILE + 1)
            .read_to_string(&mut text)
            .map_err(read)?;
        if text.len() as u64 > MAX_FILE {
            return Err(ConfigError::TooLarge {
                path: path.to_owned(),
            });
        }
        Settings::parse(path, &text, command)
    }

    /// Check `text` (the contents of `path`) against `command`'s flags.
    pub fn parse(path: &Path, text: &str, command: &Command) -> Result<Settings, ConfigError> {
        let mut command = command.clone();
        command.build();
        let line_of = |span: Range<usize>| line_of(text, span.start);
        let table = DeTable::parse(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            line: e.span().map(&line_of).unwrap_or(1),
            message: e.message().trim_end().to_owned(),
        })?;
        let mut settings = Vec::new();
        for (key, value) in table.get_ref() {
            let line = line_of(key.span());
            let key = key.get_ref().as_ref();
            let arg = find_arg(&command, key).ok_or_else(|| ConfigError::UnknownKey {
                path: path.to_owned(),
                line,
                key: key.to_owned(),
            })?;
            let bad = |reason: String| ConfigError::BadValue {
                path: path.to_owned(),
                line,
                key: key.to_owned(),
                reason,
            };
            let values = values_of(arg, value.get_ref()).map_err(bad)?;
            for v in values.iter().flatten() {
                check_value(arg, v).map_err(bad)?;
            }
            settings.push(Setting {
                id: arg.get_id().to_string(),
                words: words(arg, values),
                positional: arg.is_positional(),
            });
        }
        Ok(Settings { settings })
    }

    /// The words to add to a command line whose parse gave `matches`: the file's settings of
    /// every flag that neither the command line nor the environment set (all of them when
    /// there is no command line: `meshfs config check`). The options, then the positional.
    pub fn words_under(&self, matches: Option<&ArgMatches>) -> (Vec<OsString>, Option<OsString>) {
        let mut options = Vec::new();
        let mut positional = None;
        for setting in &self.settings {
            let from_user = matches!(
                matches.and_then(|m| m.value_source(&setting.id)),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            );
            if from_user {
                continue;
            }
            if setting.positional {
                positional = setting.words.first().cloned();
            } else {
                options.extend(setting.words.iter().cloned());
            }
        }
        (options, positional)
    }
}

/// The default configuration file of a user: `$XDG_CONFIG_HOME/meshfs/meshfs.toml`, else
/// `~/.config/meshfs/meshfs.toml`; with neither variable set (a bare service),
/// [`SYSTEM_PATH`].
pub fn default_path() -> PathBuf {
    let var = |name| std::env::var_os(name).filter(|v: &OsString| !v.is_empty());
    if let Some(dir) = var("XDG_CONFIG_HOME") {
        PathBuf::from(dir).join("meshfs/meshfs.toml")
    } else if let Some(home) = var("HOME") {
        PathBuf::from(home).join(".config/meshfs/meshfs.toml")
    } else {
        PathBuf::from(SYSTEM_PATH)
    }
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The flag a key sets: a long name, or the id of a positional argument (`dir`).
fn find_arg<'c>(command: &'c Command, key: &str) -> Option<&'c Arg> {
    if NOT_SETTINGS.contains(&key) {
        return None;
    }
    command.get_arguments().find(|arg| {
        if arg.is_positional() {
            arg.get_id() == key
        } else {
            arg.get_long() == Some(key) && !arg.is_hide_set()
        }
    })
}

/// Whether the flag takes no value (`--no-web`).
fn is_switch(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse)
}

/// A TOML value as the flag's values: `None` stands for the flag given without a value (a
/// switch set to true, or `ftp = true` for a flag whose value is optional).
fn values_of(arg: &Arg, value: &DeValue) -> Result<Vec<Option<String>>, String> {
    let optional_value = arg.get_num_args().is_some_and(|n| n.min_values() == 0);
    if is_switch(arg) {
        return match value {
            DeValue::Boolean(true) => Ok(vec![None]),
            DeValue::Boolean(false) => Ok(Vec::new()),
            other => Err(format!(
                "expected true or false, found {}",
                other.type_str()
            )),
        };
    }
    match value {
        DeValue::Boolean(true) if optional_value => Ok(vec![None]),
        DeValue::Boolean(false) if optional_value => Ok(Vec::new()),
        DeValue::Array(items) if matches!(arg.get_action(), ArgAction::Append) => items
            .iter()
            .map(|item| scalar(item.get_ref()).map(Some))
            .collect(),
        DeValue::Array(_) => Err("takes one value, not a list".to_owned()),
        other => Ok(vec![Some(scalar(other)?)]),
    }
}

/// A string, integer or float as the text a flag would be given.
fn scalar(value: &DeValue) -> Result<String, String> {
    match value {
        DeValue::String(s) => Ok(s.to_string()),
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .map(|i| i.to_string())
            .map_err(|e| format!("integer out of range: {e}")),
        DeValue::Float(f) => Ok(f.as_str().to_owned()),
        other => Err(format!(
            "expected a string or a number, found {}",
            other.type_str()
        )),
    }
}

/// Run the flag's own parser on `value`, as the command line would: the flag alone in a
/// command of its own (its links to other flags and its environment variable cut, so that
/// only the value is judged here; the whole file is parsed with every rule afterwards).
fn check_value(arg: &Arg, value: &str) -> Result<(), String> {
    let alone = arg
        .clone()
        .env(None)
        .requires(Resettable::Reset)
        .conflicts_with(Resettable::Reset)
        .overrides_with(Resettable::Reset)
        .group(Resettable::Reset)
        .required(false)
        .global(false);
    Command::new("meshfs")
        .no_binary_name(true)
        .arg(alone)
        .try_get_matches_from(words(arg, vec![Some(value.to_owned())]))
        .map(drop)
        .map_err(|e| clap_message(&e))
}

/// clap's message without its `error: ` prefix and its hint about --help ("invalid value 'x'
/// for '--flag <V>': why"): the first line says it all.
pub fn clap_message(e: &clap::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_owned()
}

/// The command-line words of a setting.
fn words(arg: &Arg, values: Vec<Option<String>>) -> Vec<OsString> {
    if arg.is_positional() {
        // A value starting with `-` would read as a flag: `./-x` is the same path.
        return values
            .into_iter()
            .flatten()
            .map(|v| {
                if v.starts_with('-') {
                    format!("./{v}").into()
                } else {
                    v.into()
                }
            })
            .collect();
    }
    let long = arg.get_long().unwrap_or_default();
    values
        .into_iter()
        .map(|v| match v {
            None => format!("--{long}").into(),
            Some(v) => format!("--{long}={v}").into(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in with the shapes of `meshfs node`'s flags.
    fn command() -> Command {
        use clap::value_parser;
        Command::new("node")
            .arg(Arg::new("dir").default_value("share"))
            .arg(
                Arg::new("listen")
                    .long("listen")
                    .default_value("0.0.0.0:4044"),
            )
            .arg(
                Arg::new("idle_timeout")
                    .long("idle-timeout")
                    .value_parser(value_parser!(u64)),
            )
            .arg(Arg::new("no_web").long("no-web").action(ArgAction::SetTrue))
            .arg(Arg::new("peer").long("peer").action(ArgAction::Append))
            .arg(Arg::new("ftp").long("ftp").num_args(0..=1))
            .arg(Arg::new("config").long("config"))
    }

    fn parse(text: &str) -> Result<Settings, ConfigError> {
        Settings::parse(Path::new("/etc/m.toml"), text, &command())
    }

    fn all_words(text: &str) -> Vec<String> {
        let settings = parse(text).unwrap();
        let matches = command().get_matches_from(["node"]);
        let (mut words, dir) = settings.words_under(Some(&matches));
        words.extend(dir);
        words
            .into_iter()
            .map(|w| w.into_string().unwrap())
            .collect()
    }

    #[test]
    fn every_shape_of_value_becomes_words() {
        let words = all_words(
            "# comment\ndir = \"-odd\"\nlisten = \"127.0.0.1:0\"\nidle-timeout = 0x10\n\
             no-web = true\npeer = [\"a:1\", \"b:2\"]\nftp = true\n",
        );
        assert_eq!(
            words,
            // Keys in sorted order; the positional last.
            [
                "--ftp",
                "--idle-timeout=16",
                "--listen=127.0.0.1:0",
                "--no-web",
                "--peer=a:1",
                "--peer=b:2",
                "./-odd"
            ]
        );
        assert!(all_words("no-web = false\nftp = false\n").is_empty());
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let cases = [
            (
                "listen = \"x\"\n\nlisten-on = 1\n",
                "/etc/m.toml:3: unknown key `listen-on`",
            ),
            ("config = \"/x\"\n", "/etc/m.toml:1: unknown key `config`"),
            (
                "\nidle-timeout = \"ten\"\n",
                "/etc/m.toml:2: key `idle-timeout`: invalid value 'ten'",
            ),
            (
                "no-web = \"yes\"\n",
                "/etc/m.toml:1: key `no-web`: expected true or false, found string",
            ),
            (
                "listen = [\"a\", \"b\"]\n",
                "/etc/m.toml:1: key `listen`: takes one value, not a list",
            ),
            (
                "peer = [{ a = 1 }]\n",
                "/etc/m.toml:1: key `peer`: expected a string or a number, found table",
            ),
            ("listen = \"a\"\nlisten = \"b\"\n", "/etc/m.toml:2: "),
            ("listen = \n", "/etc/m.toml:1: "),
        ];
        for (text, want) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.starts_with(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn flags_and_environment_keep_their_values() {
        let settings = parse("listen = \"file:1\"\nidle-timeout = 5\ndir = \"/srv\"\n").unwrap();
        let matches = command().get_matches_from(["node", "--listen", "cli:1", "/home"]);
        let (words, dir) = settings.words_under(Some(&matches));
        assert_eq!(words, [OsString::from("--idle-timeout=5")]);
        assert_eq!(dir, None);
    }
}
