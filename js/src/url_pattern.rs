//! The Rust half of `URLPattern`: Deno's `urlpattern` crate parses a
//! pattern into one ECMAScript regexp per URL component, and canonicalises
//! a URL to match; `web/urlpattern.js` runs the regexps with the engine's
//! own RegExp, as Deno does, so custom groups have JavaScript semantics.

use rquickjs::{Ctx, Exception, Function, Object, Result};
use urlpattern::quirks::{self, StringOrInit};

/// Why a pattern or an input was refused, in the words of the TypeError.
fn parse_input(json: &str) -> std::result::Result<StringOrInit<'static>, String> {
    serde_json::from_str(json).map_err(|e| format!("URLPattern: bad input: {e}"))
}

/// The pattern's components (`patternString`, `regexpString`,
/// `groupNameList` each) and `hasRegexpGroups`, as JSON.
fn parse(input: &str, base_url: Option<&str>, ignore_case: bool) -> std::result::Result<String, String> {
    let init = quirks::process_construct_pattern_input(parse_input(input)?, base_url).map_err(|e| e.to_string())?;
    let options = urlpattern::UrlPatternOptions {
        ignore_case,
        ..Default::default()
    };
    let pattern = quirks::parse_pattern::<quirks::EcmaRegexp>(init, options).map_err(|e| e.to_string())?;
    serde_json::to_string(&pattern).map_err(|e| e.to_string())
}

/// The eight canonical component strings of a URL or init to match, as
/// JSON; `None` when it is not a URL (the match then fails, not throws).
fn match_input(input: &str, base_url: Option<&str>) -> std::result::Result<Option<String>, String> {
    let Some((input, _)) = quirks::process_match_input(parse_input(input)?, base_url).map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let Some(values) = quirks::parse_match_input(input) else {
        return Ok(None);
    };
    serde_json::to_string(&values).map(Some).map_err(|e| e.to_string())
}

/// Adds `urlPatternParse` and `urlPatternMatchInput` to `native`.
pub(crate) fn install<'js>(ctx: &Ctx<'js>, native: &Object<'js>) -> Result<()> {
    native.set(
        "urlPatternParse",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, input: String, base_url: Option<String>, ignore_case: bool| -> Result<String> {
                parse(&input, base_url.as_deref(), ignore_case).map_err(|e| Exception::throw_type(&ctx, &e))
            },
        )?,
    )?;
    native.set(
        "urlPatternMatchInput",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, input: String, base_url: Option<String>| -> Result<Option<String>> {
                match_input(&input, base_url.as_deref()).map_err(|e| Exception::throw_type(&ctx, &e))
            },
        )?,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_becomes_one_regexp_per_component() {
        let json = parse(r#""https://*.example.com/books/:id""#, None, false).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["pathname"]["groupNameList"], serde_json::json!(["id"]));
        assert_eq!(v["hostname"]["groupNameList"], serde_json::json!(["0"]));
        assert!(parse(r#""/books/:id(""#, Some("https://example.com"), false).is_err());
        assert!(
            parse(r#"{"pathname": "/x"}"#, Some("https://example.com"), false).is_err(),
            "init with a base URL"
        );
    }

    #[test]
    fn inputs_are_canonicalised_or_refused() {
        let json = match_input(r#""https://EXAMPLE.com:443/a/../b?q#h""#, None)
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            (v["hostname"].as_str(), v["port"].as_str(), v["pathname"].as_str()),
            (Some("example.com"), Some(""), Some("/b"))
        );
        assert_eq!(match_input(r#""not a url""#, None).unwrap(), None);
    }
}
