//! What a node's retention is told to keep: the rules (`--retain AGE`, `--keep-free
//! PERCENT|SIZE`, `--max-size SIZE`), the files never to touch (`--protect GLOB`), and the
//! bounded parsers that read them from flags or a configuration file.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Which rule asked for a deletion (as logged, and as `--dry-run` prints it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// The file is older than `--retain`.
    Age,
    /// The file system has less free space than `--keep-free`.
    KeepFree,
    /// The share holds more than `--max-size`.
    MaxSize,
}

impl Rule {
    /// The flag's name, without dashes.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Age => "retain",
            Rule::KeepFree => "keep-free",
            Rule::MaxSize => "max-size",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A malformed size, percentage, age or pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRule(pub String);

/// Longest rule value or pattern accepted.
const MAX_LEN: usize = 256;

/// A byte count written like `500M`, `2G`, `1.5GiB`, `4096` (units are powers of 1024; `k`,
/// `m`, `g`, `t` in any case, with an optional `B` or `iB`).
pub fn parse_size(s: &str) -> Result<u64, BadRule> {
    let bad = || BadRule(format!("{s:?} is not a size (e.g. 500M, 2G, 4096)"));
    let t = s.trim();
    if t.is_empty() || t.len() > MAX_LEN {
        return Err(bad());
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(bad()),
    };
    let bytes = num * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// How much of the file system must stay free: a share of its size or a byte count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// Percent of the file system's size, `0..=100`.
    Percent(f64),
    Bytes(u64),
}

impl Limit {
    /// The limit in bytes, on a file system of `total` bytes.
    pub fn bytes(self, total: u64) -> u64 {
        match self {
            Limit::Percent(p) => (total as f64 * p / 100.0) as u64,
            Limit::Bytes(b) => b,
        }
    }
}

impl FromStr for Limit {
    type Err = BadRule;

    /// `10%` or a size ([`parse_size`]).
    fn from_str(s: &str) -> Result<Limit, BadRule> {
        match s.trim().strip_suffix('%') {
            Some(p) => match p.trim().parse::<f64>() {
                Ok(p) if (0.0..=100.0).contains(&p) => Ok(Limit::Percent(p)),
                _ => Err(BadRule(format!("{s:?} is not a percentage (0% to 100%)"))),
            },
            None => parse_size(s).map(Limit::Bytes),
        }
    }
}

/// An age like `7d`, `36h`, `90m` (humantime's units).
pub fn parse_age(s: &str) -> Result<Duration, BadRule> {
    if s.len() > MAX_LEN {
        return Err(BadRule("age too long".into()));
    }
    humantime::parse_duration(s.trim())
        .map_err(|e| BadRule(format!("{s:?} is not an age (e.g. 7d, 36h): {e}")))
}

/// A `--protect` pattern. With a `/` it is matched against the whole path relative to the
/// share (`keep/**`, `cam1/*.jpg`); without one, against the file's name in any folder
/// (`*.keep`, `evidence-*`). `*` matches within one component, `**` across components, `?`
/// one character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: Vec<char>,
    whole_path: bool,
}

impl FromStr for Glob {
    type Err = BadRule;

    fn from_str(s: &str) -> Result<Glob, BadRule> {
        let t = s.trim().trim_start_matches('/');
        if t.is_empty() || t.len() > MAX_LEN {
            return Err(BadRule(format!("{s:?} is not a pattern")));
        }
        Ok(Glob {
            pattern: t.chars().collect(),
            whole_path: t.contains('/'),
        })
    }
}

impl Glob {
    /// Does the share-relative `path` (`a/b/c`) match?
    pub fn matches(&self, path: &str) -> bool {
        let subject = if self.whole_path {
            path
        } else {
            path.rsplit('/').next().unwrap_or(path)
        };
        let text: Vec<char> = subject.chars().collect();
        matches(&self.pattern, &text)
    }
}

/// Glob matching by dynamic programming over (pattern, text) positions: linear in their
/// product whatever the pattern, so no pattern can make it backtrack exponentially.
fn matches(p: &[char], t: &[char]) -> bool {
    // row[j]: pattern[..i] matches text[..j].
    let mut row = vec![false; t.len() + 1];
    row[0] = true;
    let mut i = 0;
    while i < p.len() {
        let mut next = vec![false; t.len() + 1];
        match p[i] {
            '*' if p.get(i + 1) == Some(&'*') => {
                // `**` matches anything, `/` included. `**/` matches nothing or anything that
                // ends in `/`, so `a/**/b` matches `a/b` and `a/x/y/b`.
                let slash = p.get(i + 2) == Some(&'/');
                let mut any = false;
                for j in 0..=t.len() {
                    if slash {
                        next[j] = row[j] || (j > 0 && t[j - 1] == '/' && any);
                        any |= row[j];
                    } else {
                        any |= row[j];
                        next[j] = any;
                    }
                }
                i += if slash { 3 } else { 2 };
                row = next;
                continue;
            }
            '*' => {
                let mut any = false;
                for j in 0..=t.len() {
                    if j > 0 && t[j - 1] == '/' {
                        any = false;
                    }
                    any |= row[j];
                    next[j] = any;
                }
            }
            '?' => {
                for j in 0..t.len() {
                    next[j + 1] = row[j] && t[j] != '/';
                }
            }
            c => {
                for j in 0..t.len() {
                    next[j + 1] = row[j] && t[j] == c;
                }
            }
        }
        row = next;
        i += 1;
    }
    row[t.len()]
}

/// Everything retention is told, from flags or a configuration file.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// Delete complete files last modified longer ago than this.
    pub retain: Option<Duration>,
    /// Delete the oldest complete files while the file system has less free than this.
    pub keep_free: Option<Limit>,
    /// Delete the oldest complete files while the share holds more than this many bytes.
    pub max_size: Option<u64>,
    /// Never delete a file matching one of these.
    pub protect: Vec<Glob>,
    /// Only say what would be deleted.
    pub dry_run: bool,
    /// Check this often (and whenever a file is `closed`).
    pub every: Duration,
    /// A file the event log has said nothing about (present at start, or after a `resync`)
    /// counts as complete only once it has not been modified for this long.
    pub settle: Duration,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            retain: None,
            keep_free: None,
            max_size: None,
            protect: Vec::new(),
            dry_run: false,
            every: Duration::from_secs(30),
            settle: Duration::from_secs(60),
        }
    }
}

impl Rules {
    /// Whether any rule may delete something (else retention only watches the disk).
    pub fn any(&self) -> bool {
        self.retain.is_some() || self.keep_free.is_some() || self.max_size.is_some()
    }

    /// Whether `path` matches a `--protect` pattern.
    pub fn protected(&self, path: &str) -> bool {
        self.protect.iter().any(|g| g.matches(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_limits() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("500M").unwrap(), 500 << 20);
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("8 MB").unwrap(), 8 << 20);
        for bad in ["", "M", "12X", "-1", "1e999"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!("10%".parse::<Limit>().unwrap(), Limit::Percent(10.0));
        assert_eq!("1G".parse::<Limit>().unwrap(), Limit::Bytes(1 << 30));
        assert!("101%".parse::<Limit>().is_err());
        assert_eq!(Limit::Percent(25.0).bytes(800), 200);
        assert_eq!(parse_age("7d").unwrap(), Duration::from_secs(7 * 86400));
        assert!(parse_age("soon").is_err());
    }

    fn g(p: &str) -> Glob {
        p.parse().unwrap()
    }

    #[test]
    fn globs() {
        assert!(g("keep/**").matches("keep/a.mp4"));
        assert!(g("keep/**").matches("keep/x/y/a.mp4"));
        assert!(!g("keep/**").matches("keepers/a.mp4"));
        assert!(!g("keep/**").matches("cam/keep/a.mp4"));
        assert!(g("**/keep/*").matches("cam/keep/a.mp4"));
        assert!(g("**/keep/*").matches("keep/a.mp4"));
        assert!(!g("**/keep/*").matches("cam/keep/x/a.mp4"));
        assert!(g("cam1/*.jpg").matches("cam1/a.jpg"));
        assert!(!g("cam1/*.jpg").matches("cam1/x/a.jpg"));
        assert!(g("*.keep").matches("deep/down/x.keep"));
        assert!(g("evidence-??.mp4").matches("a/evidence-01.mp4"));
        assert!(!g("evidence-??.mp4").matches("evidence-1.mp4"));
        assert!(g("/keep/**").matches("keep/a"));
        // No exponential backtracking on hostile patterns.
        let hostile = g(&"*a".repeat(100));
        assert!(!hostile.matches(&"a".repeat(99)));
        assert!("".parse::<Glob>().is_err());
    }
}
