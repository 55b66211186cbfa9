//! `.helmignore`: which files of a chart directory stay out of the package.
//!
//! Patterns follow gitignore, as Helm documents them: `#` comments, blank lines, `!` negation
//! (the last matching pattern wins), a trailing `/` for directories only, a leading `/` or any
//! inner `/` anchors a pattern to the chart directory, otherwise it matches a name at any depth.
//! `*` and `?` never cross `/`. Where Helm's own matcher differs it is in corner cases: it rejects
//! `**` (accepted here, gitignore-style), and its `!` handling is unlike gitignore's.

use globset::{GlobBuilder, GlobMatcher};

use super::ChartError;

/// Helm always adds this rule: hidden files directly in `templates/` are never templates.
const HELM_DEFAULT_RULES: &str = "templates/.?*";

#[derive(Debug)]
struct Rule {
    matcher: GlobMatcher,
    negate: bool,
    dir_only: bool,
    /// Matched against the whole relative path rather than the last component.
    full_path: bool,
}

/// Parsed `.helmignore` rules plus Helm's defaults.
#[derive(Debug)]
pub(super) struct IgnoreRules {
    rules: Vec<Rule>,
}

impl IgnoreRules {
    /// Parses `.helmignore` text (empty when the chart has none) and appends Helm's defaults,
    /// which come last so that a negation can't re-include what Helm would always exclude.
    pub(super) fn parse(text: &str, origin: &str) -> Result<Self, ChartError> {
        let mut rules = Vec::new();
        for (index, raw) in text.lines().chain(HELM_DEFAULT_RULES.lines()).enumerate() {
            if let Some(rule) = parse_line(raw).map_err(|problem| ChartError::HelmIgnore {
                origin: origin.to_owned(),
                line: index + 1,
                pattern: raw.trim().to_owned(),
                problem,
            })? {
                rules.push(rule);
            }
        }
        Ok(Self { rules })
    }

    /// Whether `rel` (a `/`-separated path relative to the chart directory) is excluded.
    /// Callers skip excluded directories entirely, so files below them need no check.
    pub(super) fn is_ignored(&self, rel: &str, is_dir: bool) -> bool {
        let name = rel.rsplit('/').next().unwrap_or(rel);
        let mut ignored = false;
        for rule in &self.rules {
            if rule.dir_only && !is_dir {
                continue;
            }
            let subject = if rule.full_path { rel } else { name };
            if rule.matcher.is_match(subject) {
                ignored = !rule.negate;
            }
        }
        ignored
    }
}

/// One line: `Ok(None)` for blanks and comments, `Err(problem)` for a pattern we can't use.
fn parse_line(raw: &str) -> Result<Option<Rule>, String> {
    // Helm trims both ends (gitignore only trims unescaped trailing spaces).
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let (negate, pattern) = match line.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, line),
    };
    let dir_only = pattern.ends_with('/');
    let pattern = pattern.trim_end_matches('/');
    let anchored = pattern.starts_with('/');
    let pattern = pattern.trim_start_matches('/');
    if pattern.is_empty() {
        return Err("matches nothing; remove it".to_owned());
    }
    let matcher = GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| format!("is not a valid glob: {}", e.kind()))?
        .compile_matcher();
    Ok(Some(Rule {
        matcher,
        negate,
        dir_only,
        full_path: anchored || pattern.contains('/'),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> IgnoreRules {
        match IgnoreRules::parse(text, "test") {
            Ok(rules) => rules,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn gitignore_like_patterns() {
        let r = rules("# comment\n\n*.bak\nbuild/\n/rooted.txt\ndocs/*.md\n!keep.bak\n");
        assert!(r.is_ignored("a.bak", false));
        assert!(r.is_ignored("templates/deep/a.bak", false));
        assert!(!r.is_ignored("keep.bak", false), "negation re-includes");
        assert!(r.is_ignored("build", true));
        assert!(r.is_ignored("sub/build", true));
        assert!(
            !r.is_ignored("build", false),
            "trailing / matches directories only"
        );
        assert!(r.is_ignored("rooted.txt", false));
        assert!(!r.is_ignored("sub/rooted.txt", false), "leading / anchors");
        assert!(r.is_ignored("docs/a.md", false));
        assert!(!r.is_ignored("docs/x/a.md", false), "* does not cross /");
        assert!(!r.is_ignored("# comment", false));
        assert!(!r.is_ignored("values.yaml", false));
    }

    #[test]
    fn helm_default_hides_dotfiles_in_templates() {
        let r = rules("");
        assert!(r.is_ignored("templates/.swp", false));
        assert!(!r.is_ignored("templates/_helpers.tpl", false));
        assert!(!r.is_ignored(".helmignore", false));
    }

    #[test]
    fn bad_pattern_names_the_line() {
        let err = IgnoreRules::parse("ok\n[unclosed\n", "chart-dir").err();
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("chart-dir") && msg.contains("line 2"), "{msg}");
    }
}
