//! The shape of the config file, declared once.
//!
//! Each section of the file is declared with [`section!`], which produces:
//! the serde struct (every field optional and spanned, so a later level can
//! override an earlier one and errors can point at the value), its [`Merge`]
//! (field by field, later wins), and its [`Shape`]. The shape drives both the
//! schema walk that reports every unknown key and bad value at once, and the
//! JSON Schema that `bulkhead config schema` prints, so the three never drift.

use std::path::PathBuf;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Value as Json, json};
use serde_saphyr::Spanned;

use super::node::{Node, Scalar, Value, spanned_pos};
use super::units::{
    Bad, Cpu, CpuList, Dur, IdRange, Percent, PortRange, Rlimit, Sig, Size, scalar_text,
};
use super::units::{
    CPU_HINT, CPUSET_HINT, DURATION_HINT, IDS_HINT, PERCENT_HINT, PORTS_HINT, RLIMIT_HINT,
    SIGNAL_HINT, SIZE_HINT,
};
use crate::error::{Code, Pos};

/// What a part of the file must look like.
pub enum Shape {
    Section {
        doc: &'static str,
        fields: Vec<FieldShape>,
    },
    /// A mapping from names the user picks (services, env) to values.
    Map {
        value: Box<Shape>,
    },
    List {
        item: Box<Shape>,
    },
    Leaf(LeafSpec),
}

pub struct FieldShape {
    pub name: &'static str,
    pub doc: &'static str,
    pub shape: Shape,
}

pub struct LeafSpec {
    pub check: fn(&Value) -> Result<(), Bad>,
    pub schema: fn() -> Json,
}

pub trait Shaped {
    fn shape() -> Shape;
}

/// A single value in the file: parsed from a YAML node by our own rules, so
/// the schema walk and the typed parse accept exactly the same things.
pub trait Leaf: Sized {
    fn from_value(v: &Value) -> Result<Self, Bad>;
    fn json_schema() -> Json;
}

impl<T: Leaf> Shaped for T {
    fn shape() -> Shape {
        Shape::Leaf(LeafSpec {
            check: |v| T::from_value(v).map(drop),
            schema: T::json_schema,
        })
    }
}

/// Field-by-field override: `base.merge(over)` keeps what `over` leaves unset.
pub trait Merge {
    fn merge(self, over: Self) -> Self;
}

impl<T: Merge> Merge for Option<T> {
    fn merge(self, over: Self) -> Self {
        match (self, over) {
            (Some(a), Some(b)) => Some(a.merge(b)),
            (a, b) => b.or(a),
        }
    }
}

/// `r#for` -> `for`: the key as written in the file.
pub const fn field_name(ident: &'static str) -> &'static str {
    match ident.as_bytes() {
        [b'r', b'#', ..] => {
            let (_, rest) = ident.split_at(2);
            rest
        }
        _ => ident,
    }
}

/// Declares a config section. Field kinds:
/// - `leaf T`: one value, `Option<Spanned<T>>`; a later level replaces it.
/// - `section S`: a nested section, merged field by field.
/// - `list T`: a list, `Option<Vec<Spanned<T>>>`; a later level replaces it whole.
/// - `map T`: named entries in file order, `Option<Entries<T>>`; merged by name.
macro_rules! section {
    (
        $(#[doc = $sdoc:literal])*
        pub struct $name:ident {
            $(
                $(#[doc = $fdoc:literal])*
                $field:ident : $kind:ident $ty:ty
            ),* $(,)?
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Debug, Clone, Default, serde::Deserialize)]
        #[serde(default)]
        pub struct $name {
            $( $(#[doc = $fdoc])* pub $field: section!(@ty $kind $ty), )*
        }

        impl $crate::config::shape::Shaped for $name {
            fn shape() -> $crate::config::shape::Shape {
                $crate::config::shape::Shape::Section {
                    doc: concat!($($sdoc, "\n",)*),
                    fields: vec![$(
                        $crate::config::shape::FieldShape {
                            name: $crate::config::shape::field_name(stringify!($field)),
                            doc: concat!($($fdoc, " ",)*),
                            shape: section!(@shape $kind $ty),
                        },
                    )*],
                }
            }
        }

        impl $crate::config::shape::Merge for $name {
            #[allow(unused_variables)]
            fn merge(self, over: Self) -> Self {
                Self { $( $field: section!(@merge $kind self.$field, over.$field), )* }
            }
        }
    };
    (@ty leaf $ty:ty) => { Option<serde_saphyr::Spanned<$ty>> };
    (@ty section $ty:ty) => { Option<$ty> };
    (@ty list $ty:ty) => { Option<Vec<serde_saphyr::Spanned<$ty>>> };
    (@ty map $ty:ty) => { Option<$crate::config::shape::Entries<$ty>> };
    (@shape leaf $ty:ty) => { <$ty as $crate::config::shape::Shaped>::shape() };
    (@shape section $ty:ty) => { <$ty as $crate::config::shape::Shaped>::shape() };
    (@shape list $ty:ty) => {
        $crate::config::shape::Shape::List { item: Box::new(<$ty as $crate::config::shape::Shaped>::shape()) }
    };
    (@shape map $ty:ty) => {
        $crate::config::shape::Shape::Map { value: Box::new(<$ty as $crate::config::shape::Shaped>::shape()) }
    };
    (@merge leaf $a:expr, $b:expr) => { $b.or($a) };
    (@merge list $a:expr, $b:expr) => { $b.or($a) };
    (@merge section $a:expr, $b:expr) => { $crate::config::shape::Merge::merge($a, $b) };
    (@merge map $a:expr, $b:expr) => { $crate::config::shape::Merge::merge($a, $b) };
}
pub(crate) use section;

/// Declares a leaf that is one of a fixed set of words.
macro_rules! word_enum {
    ($(#[doc = $doc:literal])* pub enum $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [&'static str] = &[$($text),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl $crate::config::shape::Leaf for $name {
            fn from_value(v: &$crate::config::node::Value) -> Result<Self, $crate::config::units::Bad> {
                let text = $crate::config::units::scalar_text(v).unwrap_or_default();
                match text.as_str() {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::config::units::Bad::new(
                        format!("{} is not one of: {}", $crate::config::shape::describe(v), Self::ALL.join(", ")),
                        "use one of the listed words",
                    )),
                }
            }

            fn json_schema() -> serde_json::Value {
                $crate::config::shape::words_schema(Self::ALL)
            }
        }

        $crate::config::shape::leaf_deserialize!($name);
    };
}
pub(crate) use word_enum;

/// The schema of a [`word_enum!`] leaf. The value is trimmed before it is
/// compared, so `" strict "` is `strict`: the words themselves (for editor
/// completion), or one of them with spaces around it.
pub fn words_schema(words: &[&str]) -> Json {
    let alternatives: Vec<String> = words.iter().map(|w| regex_literal(w)).collect();
    json!({"anyOf": [
        {"enum": words},
        {"type": "string", "pattern": format!("^\\s*({})\\s*$", alternatives.join("|"))},
    ]})
}

/// `w` as a regular expression matching exactly it.
fn regex_literal(w: &str) -> String {
    w.chars()
        .flat_map(|c| {
            let special = "\\^$.|?*+()[]{}".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

/// `Deserialize` for a [`Leaf`]: read the node, then apply the leaf's own rules.
macro_rules! leaf_deserialize {
    ($t:ty) => {
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = $crate::config::node::Value::deserialize(d)?;
                <$t as $crate::config::shape::Leaf>::from_value(&v)
                    .map_err(|b| <D::Error as serde::de::Error>::custom(b.message))
            }
        }
    };
}
pub(crate) use leaf_deserialize;

/// How a value reads in an error message: `"64X"`, `a list`.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Scalar(s) => s.to_string(),
        other => other.kind_name().to_string(),
    }
}

/// Named entries in file order, each key with its position.
#[derive(Debug, Clone)]
pub struct Entries<T>(pub Vec<(Spanned<String>, Spanned<T>)>);

impl<T> Default for Entries<T> {
    fn default() -> Self {
        Entries(Vec::new())
    }
}

impl<T> Entries<T> {
    pub fn get(&self, name: &str) -> Option<&Spanned<T>> {
        self.0.iter().find(|(k, _)| k.value == name).map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, Pos, &T)> {
        self.0
            .iter()
            .map(|(k, v)| (k.value.as_str(), spanned_pos(k), &v.value))
    }
}

impl<T: Clone> Merge for Entries<T> {
    fn merge(mut self, over: Self) -> Self {
        for (k, v) in over.0 {
            match self.0.iter_mut().find(|(bk, _)| bk.value == k.value) {
                Some(slot) => *slot = (k, v),
                None => self.0.push((k, v)),
            }
        }
        self
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Entries<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Entries<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Entries(Vec::new()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = map.next_key::<Spanned<String>>()? {
                    out.push((k, map.next_value::<Spanned<T>>()?));
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

// ---------------------------------------------------------------- leaves

macro_rules! unit_leaf {
    ($t:ty, $schema:expr) => {
        impl Leaf for $t {
            fn from_value(v: &Value) -> Result<Self, Bad> {
                <$t>::from_value(v)
            }
            fn json_schema() -> Json {
                $schema
            }
        }
        leaf_deserialize!($t);
    };
}

// The schemas below describe what `from_value` accepts, kind by kind: a unit
// read through `scalar_text` takes any scalar whose text parses (`cpuset: 3`
// is "3"), so a number is allowed wherever its text can be valid.
unit_leaf!(
    Size,
    json!({"type": ["number", "string"], "minimum": 0, "description": SIZE_HINT})
);
// A bare number has no unit and is refused, except 0 (`grace: 0`).
unit_leaf!(
    Dur,
    json!({"anyOf": [{"type": "string"}, {"const": 0}], "description": DURATION_HINT})
);
unit_leaf!(
    Cpu,
    json!({"type": ["number", "string"], "minimum": 0, "description": CPU_HINT})
);
unit_leaf!(
    CpuList,
    json!({"type": ["integer", "string"], "minimum": 0, "maximum": super::units::MAX_CPU, "description": CPUSET_HINT})
);
// The % sign is required, so only text can be a percentage.
unit_leaf!(
    Percent,
    json!({"type": "string", "description": PERCENT_HINT})
);
unit_leaf!(Sig, json!({"type": "string", "description": SIGNAL_HINT}));
unit_leaf!(Rlimit, {
    let limit = json!({"type": ["number", "string"], "minimum": 0});
    json!({
        "type": ["number", "string", "object"],
        "minimum": 0,
        "properties": {"soft": limit, "hard": limit},
        "additionalProperties": false,
        "minProperties": 1,
        "description": RLIMIT_HINT
    })
});
unit_leaf!(
    PortRange,
    json!({"type": "string", "description": PORTS_HINT})
);
unit_leaf!(IdRange, json!({"type": "string", "description": IDS_HINT}));

impl Leaf for bool {
    fn from_value(v: &Value) -> Result<Self, Bad> {
        match v {
            Value::Scalar(Scalar::Bool(b)) => Ok(*b),
            other => Err(Bad::kind(
                format!("expected true or false, found {}", describe(other)),
                "write true or false",
            )),
        }
    }
    fn json_schema() -> Json {
        json!({"type": "boolean"})
    }
}

impl Leaf for String {
    fn from_value(v: &Value) -> Result<Self, Bad> {
        scalar_text(v).ok_or_else(|| {
            Bad::kind(
                format!("expected text, found {}", v.kind_name()),
                "write a single value",
            )
        })
    }
    /// Any scalar is text: `env: {PORT: 8080}`, `user: 65534`.
    fn json_schema() -> Json {
        json!({"type": ["string", "number", "boolean"]})
    }
}

const PATH_HINT: &str = "write an absolute path, starting with /";

/// An absolute filesystem path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct AbsPath(pub PathBuf);

impl Leaf for AbsPath {
    fn from_value(v: &Value) -> Result<Self, Bad> {
        let s = String::from_value(v)?;
        if !s.starts_with('/') {
            return Err(Bad::new(
                format!("{s:?} is not an absolute path"),
                PATH_HINT,
            ));
        }
        if s.contains('\0') {
            return Err(Bad::new("a path cannot contain a NUL byte", PATH_HINT));
        }
        Ok(AbsPath(PathBuf::from(s)))
    }
    fn json_schema() -> Json {
        // The text is trimmed before the check.
        json!({"type": "string", "pattern": "^\\s*/"})
    }
}
leaf_deserialize!(AbsPath);

macro_rules! int_leaf {
    ($t:ty) => {
        impl Leaf for $t {
            fn from_value(v: &Value) -> Result<Self, Bad> {
                const HINT: &str = concat!("write a whole number that fits ", stringify!($t));
                match v {
                    Value::Scalar(Scalar::Int(i)) => <$t>::try_from(*i).map_err(|_| {
                        Bad::new(format!("{i} is out of range ({}..={})", <$t>::MIN, <$t>::MAX), HINT)
                    }),
                    other => Err(Bad::kind(format!("expected a whole number, found {}", describe(other)), HINT)),
                }
            }
            fn json_schema() -> Json {
                json!({"type": "integer", "minimum": <$t>::MIN, "maximum": <$t>::MAX})
            }
        }
    };
}
int_leaf!(u16);
int_leaf!(u32);
int_leaf!(u64);
int_leaf!(i32);

impl Leaf for f64 {
    fn from_value(v: &Value) -> Result<Self, Bad> {
        match v {
            Value::Scalar(Scalar::Float(x)) if x.is_finite() => Ok(*x),
            // Exact for every integer a person would write here.
            #[allow(clippy::cast_precision_loss)]
            Value::Scalar(Scalar::Int(i)) => Ok(*i as f64),
            other => Err(Bad::kind(
                format!("expected a number, found {}", describe(other)),
                "write a number such as 2 or 1.5",
            )),
        }
    }
    fn json_schema() -> Json {
        json!({"type": "number"})
    }
}

// ---------------------------------------------------------------- the walk

/// A problem found by the schema walk.
#[derive(Debug, Clone, PartialEq)]
pub struct WalkError {
    pub code: Code,
    pub pos: Pos,
    pub path: String,
    pub message: String,
    pub suggestion: String,
}

/// Checks `node` against `shape`, collecting every problem: unknown keys (with
/// the closest known key), duplicate keys, wrong kinds, values a leaf refuses.
pub fn walk(node: &Node, shape: &Shape, path: &str, out: &mut Vec<WalkError>) {
    // An empty key (`resources:` with nothing after it) means "not set".
    if matches!(node.value, Value::Scalar(Scalar::Null)) {
        return;
    }
    match shape {
        Shape::Section { fields, .. } => {
            let Value::Map(entries) = &node.value else {
                return out.push(kind_error(
                    node,
                    path,
                    "a mapping of keys",
                    "indent the keys under this one",
                ));
            };
            check_duplicates(entries, path, out);
            check_keys(entries, path, out);
            for (k, v) in entries {
                if matches!(
                    k.value,
                    Value::Seq(_) | Value::Map(_) | Value::Scalar(Scalar::Null)
                ) {
                    continue;
                }
                let key = k.key_text();
                let sub = join(path, &key);
                match fields.iter().find(|f| f.name == key) {
                    Some(f) => walk(v, &f.shape, &sub, out),
                    None => {
                        let names: Vec<&str> = fields.iter().map(|f| f.name).collect();
                        out.push(WalkError {
                            code: Code::ConfigUnknownKey,
                            pos: k.pos,
                            path: sub,
                            message: format!(
                                "unknown key `{key}` in {}",
                                if path.is_empty() {
                                    "the top level"
                                } else {
                                    path
                                }
                            ),
                            suggestion: match closest(&key, &names) {
                                Some(best) => format!("did you mean `{best}`?"),
                                None => format!("known keys here: {}", names.join(", ")),
                            },
                        });
                    }
                }
            }
        }
        Shape::Map { value } => {
            let Value::Map(entries) = &node.value else {
                return out.push(kind_error(
                    node,
                    path,
                    "a mapping of names to values",
                    "write `name: value` entries under this key",
                ));
            };
            check_duplicates(entries, path, out);
            check_keys(entries, path, out);
            for (k, v) in entries {
                let sub = join(path, &k.key_text());
                if matches!(v.value, Value::Scalar(Scalar::Null)) {
                    // Nothing after the colon: point at the name.
                    let at_key = Node {
                        value: v.value.clone(),
                        pos: k.pos,
                    };
                    walk_entry(&at_key, value, &sub, out);
                } else {
                    walk_entry(v, value, &sub, out);
                }
            }
        }
        Shape::List { item } => {
            let Value::Seq(items) = &node.value else {
                return out.push(kind_error(
                    node,
                    path,
                    "a list",
                    "write a list: [a, b] or one `- item` per line",
                ));
            };
            for (i, it) in items.iter().enumerate() {
                walk_entry(it, item, &format!("{path}[{i}]"), out);
            }
        }
        Shape::Leaf(spec) => walk_leaf(node, spec, path, out),
    }
}

/// A list item or a named entry (`env`, `services`). Unlike a key left empty,
/// an empty item is not "not set": `command: [~]` is a list with a null in
/// it, so a value that must be text or a number is reported.
fn walk_entry(node: &Node, shape: &Shape, path: &str, out: &mut Vec<WalkError>) {
    let null = matches!(node.value, Value::Scalar(Scalar::Null));
    match shape {
        Shape::Leaf(spec) => walk_leaf(node, spec, path, out),
        Shape::Section { .. } if null => out.push(kind_error(
            node,
            path,
            "a mapping of keys",
            "write its keys indented under it",
        )),
        Shape::Map { .. } if null => out.push(kind_error(
            node,
            path,
            "a mapping of names to values",
            "write `name: value` entries indented under it",
        )),
        Shape::List { .. } if null => out.push(kind_error(
            node,
            path,
            "a list",
            "write a list: [a, b] or one `- item` per line",
        )),
        other => walk(node, other, path, out),
    }
}

fn walk_leaf(node: &Node, spec: &LeafSpec, path: &str, out: &mut Vec<WalkError>) {
    if let Err(bad) = (spec.check)(&node.value) {
        let code = match node.value {
            Value::Scalar(_) if !bad.wrong_kind => Code::ConfigInvalidValue,
            _ => Code::ConfigType,
        };
        out.push(WalkError {
            code,
            pos: node.pos,
            path: path.to_string(),
            message: format!("{path}: {}", bad.message),
            suggestion: bad.hint.to_string(),
        });
    }
}

/// Names (of services, groups, variables) must be plain words: a list, a
/// mapping or nothing cannot be a key.
fn check_keys(entries: &[(Node, Node)], path: &str, out: &mut Vec<WalkError>) {
    for (k, _) in entries {
        if matches!(
            k.value,
            Value::Seq(_) | Value::Map(_) | Value::Scalar(Scalar::Null)
        ) {
            out.push(WalkError {
                code: Code::ConfigType,
                pos: k.pos,
                path: path.to_string(),
                message: format!(
                    "{}: a key must be a name, found {}",
                    where_(path),
                    k.value.kind_name()
                ),
                suggestion: "write the name as plain text before the colon".to_string(),
            });
        }
    }
}

/// How a path reads in a message: `services.web`, or `the top level`.
fn where_(path: &str) -> &str {
    if path.is_empty() {
        "the top level"
    } else {
        path
    }
}

fn kind_error(node: &Node, path: &str, expected: &str, hint: &str) -> WalkError {
    WalkError {
        code: Code::ConfigType,
        pos: node.pos,
        path: path.to_string(),
        message: format!(
            "{}: expected {expected}, found {}",
            if path.is_empty() { "the file" } else { path },
            describe(&node.value)
        ),
        suggestion: hint.to_string(),
    }
}

fn check_duplicates(entries: &[(Node, Node)], path: &str, out: &mut Vec<WalkError>) {
    for (i, (k, _)) in entries.iter().enumerate() {
        let key = k.key_text();
        if let Some((first, _)) = entries[..i].iter().find(|(e, _)| e.key_text() == key) {
            out.push(WalkError {
                code: Code::ConfigDuplicateKey,
                pos: k.pos,
                path: join(path, &key),
                message: format!(
                    "`{key}` appears twice in {}",
                    if path.is_empty() {
                        "the top level"
                    } else {
                        path
                    }
                ),
                suggestion: format!("keep one of them (the first is at line {})", first.pos.line),
            });
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The known name closest to `word`, if it is close enough to be a typo.
pub fn closest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| {
            (
                strsim::damerau_levenshtein(&word.to_ascii_lowercase(), &k.to_ascii_lowercase()),
                *k,
            )
        })
        .filter(|(d, k)| *d <= (k.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

// ---------------------------------------------------------------- JSON Schema

/// The JSON Schema (draft 2020-12) of a shape, for editors.
///
/// It follows the walk: a key left empty (`memory: {max: }`) is "not set",
/// so every field of a section also takes null; a list item or a named entry
/// (`command: [~]`, `env: {A: }`) does not. Each leaf's schema says which
/// kinds of scalar its parser takes.
pub fn json_schema(shape: &Shape) -> Json {
    match shape {
        Shape::Section { doc, fields } => {
            let props: serde_json::Map<String, Json> = fields
                .iter()
                .map(|f| {
                    let mut s = nullable(json_schema(&f.shape));
                    let doc = f.doc.trim();
                    if !doc.is_empty() {
                        s["description"] = Json::String(doc.to_string());
                    }
                    (f.name.to_string(), s)
                })
                .collect();
            let mut s =
                json!({"type": "object", "properties": props, "additionalProperties": false});
            if !doc.trim().is_empty() {
                s["description"] = Json::String(doc.trim().to_string());
            }
            s
        }
        Shape::Map { value } => {
            json!({"type": "object", "additionalProperties": json_schema(value)})
        }
        Shape::List { item } => json!({"type": "array", "items": json_schema(item)}),
        Shape::Leaf(spec) => (spec.schema)(),
    }
}

/// `schema`, also allowing null: added to its `type`, or as one more `anyOf`
/// alternative.
fn nullable(mut schema: Json) -> Json {
    let null = Json::String("null".into());
    if let Some(any) = schema.get_mut("anyOf").and_then(Json::as_array_mut) {
        any.push(json!({"type": "null"}));
        return schema;
    }
    if let Some(words) = schema.get_mut("enum").and_then(Json::as_array_mut) {
        words.push(Json::Null);
    }
    match schema.get_mut("type") {
        Some(Json::Array(types)) => types.push(null),
        Some(one @ Json::String(_)) => *one = Json::Array(vec![one.take(), null]),
        _ => return json!({"anyOf": [schema, {"type": "null"}]}),
    }
    schema
}

#[cfg(test)]
mod schema_tests {
    use super::*;

    #[test]
    fn fields_take_null_but_entries_do_not() {
        let shape = Shape::Section {
            doc: "",
            fields: vec![FieldShape {
                name: "env",
                doc: "",
                shape: Shape::Map {
                    value: Box::new(String::shape()),
                },
            }],
        };
        let s = json_schema(&shape);
        assert_eq!(s["type"], "object");
        assert_eq!(s["properties"]["env"]["type"], json!(["object", "null"]));
        assert_eq!(
            s["properties"]["env"]["additionalProperties"]["type"],
            json!(["string", "number", "boolean"])
        );
    }

    #[test]
    fn nullable_extends_type_enum_or_any_of() {
        assert_eq!(
            nullable(json!({"type": "string"})),
            json!({"type": ["string", "null"]})
        );
        assert_eq!(
            nullable(json!({"enum": ["a"]})),
            json!({"anyOf": [{"enum": ["a", null]}, {"type": "null"}]})
        );
        let words = nullable(words_schema(&["on-failure", "never"]));
        assert_eq!(words["anyOf"][2], json!({"type": "null"}));
        assert_eq!(words["anyOf"][1]["pattern"], "^\\s*(on-failure|never)\\s*$");
    }

    #[test]
    fn regex_literals_escape_metacharacters() {
        assert_eq!(regex_literal("a.b|c"), "a\\.b\\|c");
        assert_eq!(regex_literal("read-only"), "read-only");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_finds_typos_only() {
        let known = ["memory", "cpu", "io", "pids"];
        assert_eq!(closest("memroy", &known), Some("memory"));
        assert_eq!(closest("cpus", &known), Some("cpu"));
        assert_eq!(closest("network", &known), None);
    }

    fn walk_text(text: &str) -> Vec<WalkError> {
        let node: Node = serde_saphyr::from_str(text).unwrap();
        let shape = Shape::Section {
            doc: "",
            fields: vec![
                FieldShape {
                    name: "flag",
                    doc: "",
                    shape: bool::shape(),
                },
                FieldShape {
                    name: "names",
                    doc: "",
                    shape: Shape::List {
                        item: Box::new(String::shape()),
                    },
                },
                FieldShape {
                    name: "vars",
                    doc: "",
                    shape: Shape::Map {
                        value: Box::new(String::shape()),
                    },
                },
            ],
        };
        let mut out = Vec::new();
        walk(&node, &shape, "", &mut out);
        out
    }

    #[test]
    fn wrong_kinds_are_type_errors() {
        let e = walk_text("flag: 1\n");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].code, Code::ConfigType);
        assert_eq!(e[0].pos, Pos { line: 1, column: 7 });
    }

    #[test]
    fn empty_keys_are_unset_but_empty_items_are_errors() {
        assert!(walk_text("flag:\nnames:\nvars:\n").is_empty());
        let e = walk_text("names: [a, ~]\nvars:\n  A: ~\n");
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e.iter().all(|w| w.code == Code::ConfigType));
        assert_eq!(
            e[0].pos,
            Pos {
                line: 1,
                column: 12
            }
        );
        // An empty entry points at its name.
        assert_eq!(e[1].pos, Pos { line: 3, column: 3 });
    }

    #[test]
    fn keys_must_be_names() {
        let e = walk_text("vars:\n  ? [a]\n  : x\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].code, Code::ConfigType);
        assert_eq!(e[0].pos, Pos { line: 2, column: 5 });
    }

    #[test]
    fn field_names_drop_raw_prefix() {
        assert_eq!(field_name("r#for"), "for");
        assert_eq!(field_name("max"), "max");
    }
}
