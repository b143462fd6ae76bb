//! A YAML document as a tree of nodes that remember where they came from.
//!
//! serde-saphyr parses the file once into this tree; the schema walk
//! ([`super::shape`]) then finds every unknown key, wrong kind and bad value in
//! one pass, each with its line and column, before the typed structs are built.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use crate::error::Pos;

/// A scalar as YAML typed it (plain `64` is an integer, `"64"` a string).
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Null => f.write_str("null"),
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Float(x) => write!(f, "{x}"),
            Scalar::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// The value of a node, without its position.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(Scalar),
    Seq(Vec<Node>),
    /// Entries in file order; keys are kept as nodes for their positions.
    Map(Vec<(Node, Node)>),
}

impl Value {
    /// What a person would call this kind of value, for "expected X, found Y".
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Scalar(Scalar::Null) => "nothing (null)",
            Value::Scalar(Scalar::Bool(_)) => "a boolean",
            Value::Scalar(Scalar::Int(_)) => "an integer",
            Value::Scalar(Scalar::Float(_)) => "a number",
            Value::Scalar(Scalar::Str(_)) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Scalar(Scalar::Str(s)) => Some(s),
            _ => None,
        }
    }
}

/// A value and where it starts in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
}

impl Node {
    /// A key as text: config keys are strings, but `80: x` is read as an
    /// integer by YAML, so scalars are turned into their text.
    pub fn key_text(&self) -> String {
        match &self.value {
            Value::Scalar(Scalar::Str(s)) => s.clone(),
            Value::Scalar(other) => other.to_string(),
            other => format!("<{}>", other.kind_name()),
        }
    }
}

/// Converts a serde-saphyr location (1-based, u64) to a [`Pos`].
pub fn pos_of(loc: &serde_saphyr::Location) -> Pos {
    let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    Pos {
        line: clamp(loc.line()),
        column: clamp(loc.column()),
    }
}

/// The position of a spanned value.
pub fn spanned_pos<T>(s: &Spanned<T>) -> Pos {
    pos_of(&s.referenced)
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Spanned::<Value>::deserialize(d)?;
        Ok(Node {
            pos: spanned_pos(&s),
            value: s.value,
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Scalar(Scalar::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Scalar(Scalar::Int(v.into())))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Scalar(Scalar::Int(v.into())))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        Ok(Value::Scalar(Scalar::Int(v)))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        Ok(Value::Scalar(match i128::try_from(v) {
            Ok(i) => Scalar::Int(i),
            Err(_) => Scalar::Str(v.to_string()),
        }))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Scalar(Scalar::Float(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Scalar(Scalar::Str(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Scalar(Scalar::Str(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Scalar(Scalar::Null))
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Scalar(Scalar::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(n) = seq.next_element::<Node>()? {
            items.push(n);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(k) = map.next_key::<Node>()? {
            let v = map.next_value::<Node>()?;
            entries.push((k, v));
        }
        Ok(Value::Map(entries))
    }
}

/// A tag bulkhead does not read, where it is written: `!!python/object/apply`, `!custom`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownTag {
    pub pos: Pos,
    /// The tag as written.
    pub tag: String,
}

/// Every tag in `text` other than the YAML core schema's (`!!str`, `!!int`,
/// `!!map`, ...) and the non-specific `!` (which makes a plain value text).
/// serde-saphyr drops the tags it has no use for, so without this a
/// `!!python/object/apply:os.system [...]` would load as a plain list. One
/// linear pass of the event parser, only over text with a `!` in it; a
/// syntax error ends the scan (the parse reports it).
pub fn unknown_tags(text: &str) -> Vec<UnknownTag> {
    use serde_saphyr::granit_parser::{Event, Parser};
    let mut found = Vec::new();
    if !text.contains('!') {
        return found;
    }
    for item in Parser::new_from_str(text) {
        let Ok((event, span)) = item else { break };
        let tag = match &event {
            Event::Scalar(_, _, _, tag)
            | Event::SequenceStart(_, _, tag)
            | Event::MappingStart(_, _, tag) => tag.as_deref(),
            _ => None,
        };
        let Some(tag) = tag else { continue };
        // The parser gives the non-specific `!` an empty handle.
        let non_specific = tag.handle().is_empty() && tag.suffix() == "!";
        if non_specific || tag.is_yaml_core_schema() {
            continue;
        }
        let at = span.tag_start().unwrap_or(span.start);
        let clamp = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        found.push(UnknownTag {
            pos: Pos {
                line: clamp(at.line()),
                column: clamp(at.col().saturating_add(1)),
            },
            tag: format!("{}{}", tag.original_handle(), tag.suffix()),
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_keeps_positions_and_kinds() {
        let n: Node =
            serde_saphyr::from_str("a:\n  b: 1\n  c: \"x\"\nd: [1.5, ~, true]\n").unwrap();
        let Value::Map(entries) = &n.value else {
            panic!("not a map")
        };
        assert_eq!(entries[0].0.key_text(), "a");
        assert_eq!(entries[0].0.pos, Pos { line: 1, column: 1 });
        let Value::Map(inner) = &entries[0].1.value else {
            panic!("not a map")
        };
        assert_eq!(inner[0].1.value, Value::Scalar(Scalar::Int(1)));
        assert_eq!(inner[0].1.pos, Pos { line: 2, column: 6 });
        assert_eq!(inner[1].1.value, Value::Scalar(Scalar::Str("x".into())));
        let Value::Seq(items) = &entries[1].1.value else {
            panic!("not a seq")
        };
        assert_eq!(items[0].value, Value::Scalar(Scalar::Float(1.5)));
        assert_eq!(items[1].value, Value::Scalar(Scalar::Null));
        assert_eq!(items[2].value, Value::Scalar(Scalar::Bool(true)));
    }

    #[test]
    fn unknown_tags_are_found_and_core_ones_pass() {
        let text = "a: !!python/object/apply:os.system [\"id\"]\nb: !custom x\nc: !!str 16\nd: ! 17\ne: !!map {x: 1}\nf: \"!not a tag\"\n";
        let found = unknown_tags(text);
        assert_eq!(
            found,
            [
                UnknownTag {
                    pos: Pos { line: 1, column: 4 },
                    tag: "!!python/object/apply:os.system".into()
                },
                UnknownTag {
                    pos: Pos { line: 2, column: 4 },
                    tag: "!custom".into()
                },
            ]
        );
        assert!(unknown_tags("a: 1\n").is_empty());
        // Verbatim and %TAG spellings of core tags are core tags.
        assert!(unknown_tags("a: !<tag:yaml.org,2002:str> x\n").is_empty());
    }

    #[test]
    fn integer_equal_keys_both_reach_the_tree() {
        // With DuplicateKeyPolicy::PassThrough the tree keeps both entries,
        // so the walk can report them; LastWins would collapse them.
        let mut o = serde_saphyr::Options::default();
        o.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
        let n: Node = serde_saphyr::from_str_with_options("16: a\n0x10: b\n0o20: c\n", o).unwrap();
        let Value::Map(entries) = &n.value else {
            panic!("not a map")
        };
        assert_eq!(entries.len(), 3);
        assert!(entries.iter().all(|(k, _)| k.key_text() == "16"));
    }
}
