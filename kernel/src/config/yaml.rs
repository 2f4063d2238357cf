//! YAML with positions: a manifest is read into a tree that remembers where
//! each key stands, so an error found later (while a plugin decodes its
//! `config`) still points at a line and column.

use std::collections::HashMap;
use std::path::Path;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::diag::Diagnostic;

/// A YAML document with the position of every key and sequence item,
/// indexed by the dotted paths serde_path_to_error prints (`a.b[0].c`).
pub(crate) struct Located {
    pub(crate) value: serde_json::Value,
    positions: HashMap<String, (u64, u64)>,
}

impl Located {
    /// Parses YAML text; a syntax error comes back with its position.
    pub(crate) fn parse(file: &Path, text: &str) -> Result<Located, Diagnostic> {
        // Duplicate keys are let through the parser and found below, where
        // the error can name the key's path and both of its lines.
        let options = serde_saphyr::options! { duplicate_keys: serde_saphyr::options::DuplicateKeyPolicy::PassThrough };
        let root: Spanned<Node> = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
            let pos = e.location().map(|l| (l.line(), l.column()));
            Diagnostic::new(file, "", first_line(&e.to_string())).at(pos)
        })?;
        if let Some(d) = root.value.first_duplicate("") {
            return Err(Diagnostic::new(
                file,
                d.path,
                format!(
                    "`{}` is given twice in the same map (first on line {}): keep one (YAML keys are unique)",
                    d.key, d.first.0
                ),
            )
            .at(Some(d.again)));
        }
        let mut positions = HashMap::new();
        let value = root.value.into_json(String::new(), &mut positions);
        Ok(Located { value, positions })
    }

    /// Decodes the document strictly into `T`, reporting every error, not
    /// only serde's first ([`super::diag::decode_every`]); each names the
    /// field (as a dotted path) and points at its line and column.
    pub(crate) fn decode_every<T: serde::de::DeserializeOwned>(&self, file: &Path) -> (Option<T>, Vec<Diagnostic>) {
        let mut value = self.value.clone();
        let decode = |v: &serde_json::Value| {
            serde_path_to_error::deserialize(v).map_err(|e| {
                let path = e.path().to_string();
                let path = if path == "." { String::new() } else { path };
                let d = Diagnostic::new(file, path.clone(), e.into_inner().to_string()).at(self.position(&path));
                Box::new((path, d))
            })
        };
        super::diag::decode_every(&mut value, decode, take_out)
    }

    /// Whether the document writes the field at `path` itself.
    pub(crate) fn has(&self, path: &str) -> bool {
        self.positions.contains_key(path)
    }

    /// The position of `path`, or of its nearest ancestor that has one.
    pub(crate) fn position(&self, path: &str) -> Option<(u64, u64)> {
        let mut p = path;
        loop {
            if let Some(pos) = self.positions.get(p) {
                return Some(*pos);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

/// Removes the field at `path` (as serde_path_to_error prints it) from
/// `value`; whether there was one.
fn take_out(value: &mut serde_json::Value, path: &str) -> bool {
    let mut keys = super::diag::table_keys(path);
    let Some(last) = keys.pop() else { return false };
    let mut map = value.as_object_mut();
    for k in keys {
        map = map
            .and_then(|m| m.get_mut(k))
            .and_then(serde_json::Value::as_object_mut);
    }
    map.is_some_and(|m| m.remove(last).is_some())
}

/// The parser's message without its own `error: line N column M:` prefix
/// (the position is reported separately).
fn first_line(s: &str) -> String {
    let mut line = s.lines().next().unwrap_or_default().trim();
    line = line.strip_prefix("error:").unwrap_or(line).trim_start();
    if line.starts_with("line ")
        && let Some((_, rest)) = line.split_once(": ")
    {
        line = rest;
    }
    line.to_owned()
}

enum Node {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<String>, Spanned<Node>)>),
}

/// A key written twice in one map.
struct Duplicate {
    /// The key's dotted path (`config.hosts.a.com`).
    path: String,
    key: String,
    first: (u64, u64),
    again: (u64, u64),
}

impl Node {
    /// The first key, in document order, written twice in one map.
    fn first_duplicate(&self, path: &str) -> Option<Duplicate> {
        let join = |k: &str| {
            if path.is_empty() {
                k.to_owned()
            } else {
                format!("{path}.{k}")
            }
        };
        match self {
            Node::Seq(items) => {
                (items.iter().enumerate()).find_map(|(i, item)| item.value.first_duplicate(&format!("{path}[{i}]")))
            }
            Node::Map(entries) => entries.iter().enumerate().find_map(|(i, (k, v))| {
                if let Some((first, _)) = entries[..i].iter().find(|(earlier, _)| earlier.value == k.value) {
                    return Some(Duplicate {
                        path: join(&k.value),
                        key: k.value.clone(),
                        first: pos(&first.referenced),
                        again: pos(&k.referenced),
                    });
                }
                v.value.first_duplicate(&join(&k.value))
            }),
            _ => None,
        }
    }

    fn into_json(self, path: String, positions: &mut HashMap<String, (u64, u64)>) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(b),
            Node::Int(i) => Value::from(i),
            Node::UInt(u) => Value::from(u),
            Node::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
            Node::Str(s) => Value::String(s),
            Node::Seq(items) => Value::Array(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let p = format!("{path}[{i}]");
                        positions.insert(p.clone(), pos(&item.referenced));
                        item.value.into_json(p, positions)
                    })
                    .collect(),
            ),
            Node::Map(entries) => Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| {
                        let p = if path.is_empty() {
                            k.value.clone()
                        } else {
                            format!("{path}.{}", k.value)
                        };
                        positions.insert(p.clone(), pos(&k.referenced));
                        (k.value, v.value.into_json(p, positions))
                    })
                    .collect(),
            ),
        }
    }
}

fn pos(l: &serde_saphyr::Location) -> (u64, u64) {
    (l.line(), l.column())
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::UInt(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries: Vec<(Spanned<String>, Spanned<Node>)> = Vec::new();
        // Duplicates are kept: `first_duplicate` reports them with their path.
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let value = map.next_value()?;
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_nested_keys_and_items() {
        let doc = Located::parse(
            Path::new("m.yaml"),
            "name: x\nconfig:\n  hosts:\n    a.com:\n      app: blog\n  list:\n    - 1\n    - 2\n",
        )
        .unwrap();
        assert_eq!(doc.value["config"]["hosts"]["a.com"]["app"], "blog");
        assert_eq!(doc.position("config.hosts.a.com.app"), Some((5, 7)));
        assert_eq!(doc.position("config.list[1]"), Some((8, 7)));
        // An unknown path falls back to its nearest known ancestor.
        assert_eq!(doc.position("config.hosts.a.com.nope"), Some((4, 5)));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = Located::parse(Path::new("m.yaml"), "name: x\nconfig: [1, 2\n")
            .err()
            .unwrap();
        assert!(err.position.is_some(), "{err}");
        let err = Located::parse(Path::new("m.yaml"), "a: 1\na: 2\n").err().unwrap();
        assert_eq!(
            err.to_string(),
            "m.yaml:2:1: a: `a` is given twice in the same map (first on line 1): keep one (YAML keys are unique)"
        );
    }

    #[test]
    fn a_duplicate_key_is_named_by_its_path_and_both_lines() {
        let text = "name: vhosts\nconfig:\n  hosts:\n    a.com:\n      app: x\n    b.com:\n      app: y\n    a.com:\n      app: z\n";
        let err = Located::parse(Path::new("m.yaml"), text).err().unwrap();
        assert_eq!(err.field, "config.hosts.a.com");
        assert_eq!(err.position, Some((8, 5)));
        assert!(
            err.reason.contains("`a.com` is given twice") && err.reason.contains("first on line 4"),
            "{err}"
        );
        assert!(!err.reason.contains("DuplicateKeyPolicy"), "{err}");
        // Inside a list item too.
        let err = Located::parse(Path::new("m.yaml"), "rules:\n  - id: 1\n    id: 2\n")
            .err()
            .unwrap();
        assert_eq!(err.field, "rules[0].id");
    }
}
