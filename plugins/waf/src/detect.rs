//! The family detectors that are code rather than a regex in the rule
//! table (see `shell` and `sql`), run on a value's canonical form after
//! the table's rules found nothing.

use crate::command_line::command_line;
use crate::glob_path::globbed_system_path;
use crate::inspect::{Finding, Switches};
use crate::normalize::Shape;
use crate::php_call::php_call;
use crate::rules::{Category, Part};
use crate::shell::glued_command;
use crate::sql::constant_condition;
use crate::ssrf_host::internal_url_host;

/// The first finding of the code detectors on one canonical value.
pub(crate) fn family_code(part: Part, name: &str, canon: &str, shape: Shape, on: &Switches) -> Option<Finding> {
    // Each detector behind a byte test first: most values have none of
    // `(`, `/` or `//`, and pay only that.
    let input = matches!(part, Part::ArgName | Part::Arg | Part::Cookie | Part::Body);
    let bytes = canon.as_bytes();
    if (input || part == Part::Path)
        && shape.has(Shape::BLANK_OR_PAREN)
        && memchr::memchr(b'(', bytes).is_some()
        && on.on(Category::Php, "php-known-function")
        && let Some(function) = php_call(canon)
    {
        return Some(Finding::new("php-known-function", Category::Php, part, name, function));
    }
    if matches!(part, Part::Path | Part::Filename) {
        return None;
    }
    if on.on(Category::Rce, "rce-glued-command")
        && let Some(word) = glued_command(canon, shape)
    {
        return Some(Finding::new("rce-glued-command", Category::Rce, part, name, &word));
    }
    if input
        && memchr::memchr(b'/', bytes).is_some()
        && on.on(Category::Rce, "rce-globbed-path")
        && let Some(path) = globbed_system_path(canon)
    {
        return Some(Finding::new("rce-globbed-path", Category::Rce, part, name, path));
    }
    if matches!(part, Part::Arg | Part::Cookie | Part::Body)
        && shape.has(Shape::BLANK_OR_PAREN)
        && on.on(Category::Rce, "rce-command-line")
        && let Some(command) = command_line(canon)
    {
        return Some(Finding::new("rce-command-line", Category::Rce, part, name, command));
    }
    if matches!(part, Part::Arg | Part::Cookie | Part::Body)
        && memchr::memmem::find(bytes, b"//").is_some()
        && on.on(Category::Ssrf, "ssrf-internal-address")
        && let Some(host) = internal_url_host(canon)
    {
        return Some(Finding::new("ssrf-internal-address", Category::Ssrf, part, name, host));
    }
    if matches!(part, Part::Arg | Part::Cookie | Part::Body)
        && on.on(Category::Sqli, "sqli-constant-condition")
        && let Some(condition) = constant_condition(canon)
    {
        return Some(Finding::new(
            "sqli-constant-condition",
            Category::Sqli,
            part,
            name,
            condition,
        ));
    }
    None
}
