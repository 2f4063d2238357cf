//! `%{tx.name}` macros in operator arguments, `setvar` values and
//! messages: parsed once, expanded per transaction.

/// A string with `%{...}` references.
#[derive(Debug, Clone, Default)]
pub(crate) struct Template {
    parts: Vec<Piece>,
}

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    /// A reference, lowercased: `tx.anomaly_score`, `matched_var`.
    Var(String),
}

impl Template {
    /// Splits `s` into text and references.
    pub(crate) fn parse(s: &str) -> Template {
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(start) = rest.find("%{") {
            let Some(len) = rest[start..].find('}') else { break };
            if start > 0 {
                parts.push(Piece::Text(rest[..start].to_owned()));
            }
            parts.push(Piece::Var(rest[start + 2..start + len].to_ascii_lowercase()));
            rest = &rest[start + len + 1..];
        }
        if !rest.is_empty() {
            parts.push(Piece::Text(rest.to_owned()));
        }
        Template { parts }
    }

    /// The string with each reference replaced by `lookup`'s answer
    /// (empty when it has none).
    pub(crate) fn expand(&self, lookup: impl Fn(&str) -> Option<String>) -> String {
        match self.parts.as_slice() {
            [] => String::new(),
            [Piece::Text(t)] => t.clone(),
            parts => parts
                .iter()
                .map(|p| match p {
                    Piece::Text(t) => t.clone(),
                    Piece::Var(v) => lookup(v).unwrap_or_default(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_references() {
        let t = Template::parse("score %{TX.anomaly_score}/%{tx.x}!");
        assert_eq!(t.expand(|v| (v == "tx.anomaly_score").then(|| "5".into())), "score 5/!");
    }
}
