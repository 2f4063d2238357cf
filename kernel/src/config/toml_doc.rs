//! TOML with positions, the counterpart of `yaml.rs`: the document is parsed
//! once into a tree that keeps every span, so a syntax error, a decoding
//! error in one part, and a problem found later while validating all point
//! at a line, a column and a dotted field path (`apps.shop.domains[1]`).

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::diag::{Diagnostic, Diagnostics};

/// A parsed TOML document and the position of every field in it.
pub(crate) struct TomlDoc<'i> {
    text: &'i str,
    root: Spanned<DeTable<'i>>,
    /// Dotted path to the byte range of its key (the whole line's start for
    /// a field) and of its value, as serde_path_to_error prints paths.
    fields: HashMap<String, Field>,
}

/// Where one field stands.
#[derive(Clone)]
struct Field {
    key: Range<usize>,
    value: Range<usize>,
}

impl<'i> TomlDoc<'i> {
    /// Parses `text`; every syntax error is reported, each with its
    /// position and, when it falls on a field's line, that field's path.
    pub(crate) fn parse(file: &Path, text: &'i str) -> Result<TomlDoc<'i>, Diagnostics> {
        let (root, errors) = DeTable::parse_recoverable(text);
        let mut fields = HashMap::new();
        index_table(root.get_ref(), "", &mut fields);
        let doc = TomlDoc { text, root, fields };
        if errors.is_empty() {
            return Ok(doc);
        }
        let mut errors: Vec<_> = errors.into_iter().collect();
        errors.sort_by_key(|e| e.span().map(|s| s.start));
        Err(Diagnostics(
            errors
                .into_iter()
                .map(|e| {
                    let at = e.span().map(|s| s.start);
                    let field = at.and_then(|at| doc.field_on_line_of(at)).unwrap_or_default();
                    Diagnostic::new(file, field, e.message().trim()).at(at.map(|at| doc.line_col(at)))
                })
                .collect(),
        ))
    }

    /// The top-level entries, for decoding a document part by part.
    pub(crate) fn root(&self) -> &Spanned<DeTable<'i>> {
        &self.root
    }

    /// Decodes the whole document strictly into `T`.
    pub(crate) fn decode_all<T: DeserializeOwned>(&self, file: &Path) -> Result<T, Diagnostic> {
        self.decode(
            file,
            "",
            Spanned::new(self.root.span(), DeValue::Table(self.root.get_ref().clone())),
        )
    }

    /// Decodes `value`, found at `path`, strictly into `T`; an error names
    /// the full field path and points at the offending key or value.
    pub(crate) fn decode<T: DeserializeOwned>(
        &self,
        file: &Path,
        path: &str,
        value: Spanned<DeValue<'i>>,
    ) -> Result<T, Diagnostic> {
        self.try_decode(file, path, value).map_err(|e| e.1)
    }

    /// Decodes `value` like [`TomlDoc::decode`], but reports every error
    /// in it, not only serde's first ([`super::diag::decode_every`]).
    pub(crate) fn decode_every<T: DeserializeOwned>(
        &self,
        file: &Path,
        path: &str,
        mut value: Spanned<DeValue<'i>>,
    ) -> (Option<T>, Vec<Diagnostic>) {
        super::diag::decode_every(&mut value, |v| self.try_decode(file, path, v.clone()), take_out)
    }

    /// Decodes `value` once; on failure, the failing field's path inside
    /// `value` and its diagnostic.
    fn try_decode<T: DeserializeOwned>(
        &self,
        file: &Path,
        path: &str,
        value: Spanned<DeValue<'i>>,
    ) -> Result<T, Box<(String, Diagnostic)>> {
        serde_path_to_error::deserialize(ValueDeserializer::from(value)).map_err(|e| {
            let inner = e.path().to_string();
            let field = match (path, inner.as_str()) {
                (p, ".") => p.to_owned(),
                ("", i) => i.to_owned(),
                (p, i) => format!("{p}.{i}"),
            };
            let err = e.into_inner();
            let at = err
                .span()
                .map(|s| self.line_col(s.start))
                .or_else(|| self.position(&field));
            Box::new((inner, Diagnostic::new(file, field, err.message().trim()).at(at)))
        })
    }

    /// Whether the file writes the field at `path` itself.
    pub(crate) fn has(&self, path: &str) -> bool {
        self.fields.contains_key(path)
    }

    /// The position of the value at `path`, or of its nearest ancestor that
    /// has one (a missing field is blamed on its table).
    pub(crate) fn position(&self, path: &str) -> Option<(u64, u64)> {
        let mut p = path;
        loop {
            if let Some(f) = self.fields.get(p) {
                return Some(self.line_col(f.value.start));
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }

    /// The field whose key is the last one before `offset` on its line.
    fn field_on_line_of(&self, offset: usize) -> Option<String> {
        let line = self.line_col(offset).0;
        self.fields
            .iter()
            .filter(|(_, f)| f.key.start <= offset && self.line_col(f.key.start).0 == line)
            .max_by_key(|(p, f)| (f.key.start, p.len()))
            .map(|(p, _)| p.clone())
    }

    /// 1-based line and column of a byte offset.
    fn line_col(&self, offset: usize) -> (u64, u64) {
        line_col(self.text, offset)
    }
}

/// Removes the field at `path` (as serde_path_to_error prints it) from
/// `value`; whether there was one.
fn take_out(value: &mut Spanned<DeValue<'_>>, path: &str) -> bool {
    let mut keys = super::diag::table_keys(path);
    let Some(last) = keys.pop() else { return false };
    let mut table = match value.get_mut() {
        DeValue::Table(t) => t,
        _ => return false,
    };
    for k in keys {
        table = match table.get_mut(k).map(Spanned::get_mut) {
            Some(DeValue::Table(t)) => t,
            _ => return false,
        };
    }
    table.remove(last).is_some()
}

/// 1-based line and column of a byte offset in `text`.
fn line_col(text: &str, offset: usize) -> (u64, u64) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() as u64 + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u64 + 1;
    (line, col)
}

fn index_table(table: &DeTable<'_>, path: &str, fields: &mut HashMap<String, Field>) {
    for (k, v) in table {
        let p = if path.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{path}.{}", k.get_ref())
        };
        fields.insert(
            p.clone(),
            Field {
                key: k.span(),
                value: v.span(),
            },
        );
        index_value(v.get_ref(), &p, fields);
    }
}

fn index_value(value: &DeValue<'_>, path: &str, fields: &mut HashMap<String, Field>) {
    match value {
        DeValue::Table(t) => index_table(t, path, fields),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let p = format!("{path}[{i}]");
                fields.insert(
                    p.clone(),
                    Field {
                        key: item.span(),
                        value: item.span(),
                    },
                );
                index_value(item.get_ref(), &p, fields);
            }
        }
        _ => {}
    }
}
