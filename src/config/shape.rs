//! The shape of the config file, declared once.
//!
//! Each section of the file is declared with [`section!`], which produces:
//! the serde struct (every field optional and spanned, so a later level can
//! override an earlier one and errors can point at the value), its [`Merge`]
//! (field by field, later wins), and its [`Shape`]. The shape drives both the
//! schema walk that reports every unknown key and bad value at once, and the
//! JSON Schema that `bulkhead config schema` prints, so the three never drift.

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Value as Json, json};
use serde_saphyr::Spanned;

use super::limits::{self, Limit};
use super::node::{Node, Scalar, Value, spanned_pos};
use super::units::{
    Bad, Cpu, CpuList, Dur, IdRange, Percent, PortRange, Rlimit, Sig, Size, scalar_text,
};
use super::units::{
    CPU_HINT, CPUSET_HINT, DURATION_HINT, IDS_HINT, PERCENT_HINT, PORTS_HINT, RLIMIT_HINT,
    SIGNAL_HINT, SIZE_HINT,
};
use crate::error::{Code, Diagnostic, Pos};

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

/// How many values a part of the file holds once merged into a service:
/// each set leaf, list item and map entry counts one. Bounds what the
/// `defaults` merge copies ([`limits::MERGED_VALUES`]).
pub trait Weight {
    fn weight(&self) -> u64;
}

impl<T: Leaf> Weight for T {
    fn weight(&self) -> u64 {
        1
    }
}

impl<T: Weight> Weight for Option<T> {
    fn weight(&self) -> u64 {
        self.as_ref().map_or(0, Weight::weight)
    }
}

impl<T: Weight> Weight for Spanned<T> {
    fn weight(&self) -> u64 {
        self.value.weight()
    }
}

impl<T: Weight> Weight for Vec<T> {
    fn weight(&self) -> u64 {
        self.iter().map(|x| x.weight().max(1)).sum()
    }
}

impl<T: Weight> Weight for Entries<T> {
    fn weight(&self) -> u64 {
        self.0.iter().map(|(_, v)| v.weight().max(1)).sum()
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

        impl $crate::config::shape::Weight for $name {
            fn weight(&self) -> u64 {
                0 $( + $crate::config::shape::Weight::weight(&self.$field) )*
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
        // A message quotes a long string's head, not 64 KiB of it.
        Value::Scalar(Scalar::Str(s)) if s.len() > DESCRIBED_BYTES => {
            let mut end = DESCRIBED_BYTES;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            format!("{:?}... ({} bytes)", &s[..end], s.len())
        }
        Value::Scalar(s) => s.to_string(),
        other => other.kind_name().to_string(),
    }
}

/// How much of a string value a message quotes.
const DESCRIBED_BYTES: usize = 80;

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
    /// Later wins by name, in one pass over each side (a hash of the names,
    /// not a search per entry: `defaults.env` meets every service's env).
    fn merge(mut self, over: Self) -> Self {
        if self.0.is_empty() {
            return over;
        }
        // Where each entry of `over` goes: the index of the entry it
        // replaces, or a new one at the end.
        let slots: Vec<usize> = {
            let mut index: HashMap<&str, usize> = self
                .0
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (k.value.as_str(), i))
                .collect();
            let mut next = self.0.len();
            over.0
                .iter()
                .map(|(k, _)| {
                    *index.entry(k.value.as_str()).or_insert_with(|| {
                        next += 1;
                        next - 1
                    })
                })
                .collect()
        };
        for ((k, v), slot) in over.0.into_iter().zip(slots) {
            match self.0.get_mut(slot) {
                Some(entry) => *entry = (k, v),
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
    /// `key=value` facts: a limit's name, bound and the value seen; where
    /// the first of two duplicate keys is.
    pub context: Vec<(String, String)>,
}

impl WalkError {
    fn new(code: Code, pos: Pos, path: &str, message: String, suggestion: String) -> Self {
        WalkError {
            code,
            pos,
            path: path.to_string(),
            message,
            suggestion,
            context: Vec::new(),
        }
    }

    /// `seen` is past `limit`: the error names the limit, its bound and `seen`.
    fn limit(limit: &Limit, pos: Pos, path: &str, seen: usize, suggestion: &str) -> Self {
        let d = limit.exceeded(where_(path), u64::try_from(seen).unwrap_or(u64::MAX));
        WalkError {
            code: d.code,
            pos,
            path: path.to_string(),
            message: d.message,
            suggestion: suggestion.to_string(),
            context: d.context,
        }
    }

    /// Whether loading stops after the walk: past a limit, building the
    /// services would do the very work the limit refuses (20k variables
    /// copied into 5,000 services), so the walk's report is the answer.
    pub fn stops_loading(&self) -> bool {
        self.code == Code::ConfigLimit
    }

    /// The user-facing error, located in `file`.
    pub fn into_diagnostic(self, file: &Path) -> Diagnostic {
        let mut d = Diagnostic::new(self.code, self.message)
            .at(file, self.pos)
            .suggest(self.suggestion);
        d.context = self.context;
        d
    }
}

/// Every tag in the file that bulkhead does not read, as errors
/// ([`super::node::unknown_tags`]).
pub fn tag_errors(text: &str) -> Vec<WalkError> {
    super::node::unknown_tags(text)
        .into_iter()
        .map(|t| {
            let mut e = WalkError::new(
                Code::ConfigSyntax,
                t.pos,
                "",
                format!("the YAML tag `{}` is not something bulkhead reads", t.tag),
                "remove the tag: bulkhead reads plain values (quote a value, or tag it `!!str`, to make it text)".to_string(),
            );
            e.context.push(("tag".into(), t.tag));
            e
        })
        .collect()
}

/// The bound on the entries of a mapping, by the key it is written under.
fn map_limit(field: Option<&str>) -> Limit {
    match field {
        Some("services") => limits::SERVICES,
        Some("env") => limits::ENV_ENTRIES,
        _ => limits::MAP_KEYS,
    }
}

/// Mappings whose keys become cgroup directory names.
fn keys_are_names(field: Option<&str>) -> bool {
    matches!(field, Some("services" | "groups"))
}

/// Checks `node` against `shape`, collecting every problem: unknown keys (with
/// the closest known key), duplicate keys, wrong kinds, values a leaf refuses,
/// and every list, mapping, string and name past its limit ([`limits`]).
/// Past a limit the node's children are not walked: one error, not 80,000.
pub fn walk(node: &Node, shape: &Shape, path: &str, out: &mut Vec<WalkError>) {
    walk_in(node, shape, path, None, out);
}

/// [`walk`] of a node written under the key `field`.
fn walk_in(node: &Node, shape: &Shape, path: &str, field: Option<&str>, out: &mut Vec<WalkError>) {
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
            if entries.len() > limits::MAP_KEYS.max_usize() {
                return out.push(WalkError::limit(
                    &limits::MAP_KEYS,
                    node.pos,
                    path,
                    entries.len(),
                    "a section has a few dozen keys at most; check that this is the right file",
                ));
            }
            check_duplicates(entries, path, out);
            check_keys(entries, path, None, out);
            let names: Vec<&str> = fields.iter().map(|f| f.name).collect();
            let mut suggest = Suggestions::new(&names);
            for (k, v) in entries {
                if !is_name(k) || oversized(k) {
                    continue;
                }
                let key = k.key_text();
                let sub = join(path, &key);
                match fields.iter().find(|f| f.name == key) {
                    Some(f) => walk_in(v, &f.shape, &sub, Some(f.name), out),
                    None => {
                        let suggestion = match suggest.closest(&key) {
                            Some(best) => format!("did you mean `{best}`?"),
                            None => format!("known keys here: {}", names.join(", ")),
                        };
                        out.push(WalkError::new(
                            Code::ConfigUnknownKey,
                            k.pos,
                            &sub,
                            format!("unknown key `{key}` in {}", where_(path)),
                            suggestion,
                        ));
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
            let limit = map_limit(field);
            if entries.len() > limit.max_usize() {
                return out.push(WalkError::limit(
                    &limit,
                    node.pos,
                    path,
                    entries.len(),
                    "split the file into several configs, or write fewer entries here",
                ));
            }
            check_duplicates(entries, path, out);
            check_keys(
                entries,
                path,
                keys_are_names(field).then_some(&limits::NAME_BYTES),
                out,
            );
            for (k, v) in entries.iter().filter(|(k, _)| !oversized(k)) {
                let sub = join(path, &k.key_text());
                if matches!(v.value, Value::Scalar(Scalar::Null)) {
                    // Nothing after the colon: point at the name.
                    let at_key = Node {
                        value: Value::Scalar(Scalar::Null),
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
            if items.len() > limits::LIST_ITEMS.max_usize() {
                return out.push(WalkError::limit(
                    &limits::LIST_ITEMS,
                    node.pos,
                    path,
                    items.len(),
                    "write fewer items (a long argument list belongs in a file the program reads)",
                ));
            }
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
        other => walk_in(node, other, path, None, out),
    }
}

fn walk_leaf(node: &Node, spec: &LeafSpec, path: &str, out: &mut Vec<WalkError>) {
    if let Value::Scalar(Scalar::Str(s)) = &node.value
        && s.len() > limits::STRING_BYTES.max_usize()
    {
        return out.push(WalkError::limit(
            &limits::STRING_BYTES,
            node.pos,
            path,
            s.len(),
            "keep long text in a file the service reads, and name the file here",
        ));
    }
    if let Err(bad) = (spec.check)(&node.value) {
        let code = match node.value {
            Value::Scalar(_) if !bad.wrong_kind => Code::ConfigInvalidValue,
            _ => Code::ConfigType,
        };
        out.push(WalkError::new(
            code,
            node.pos,
            path,
            format!("{path}: {}", bad.message),
            bad.hint.to_string(),
        ));
    }
}

/// Whether a key can name something: a list, a mapping or nothing cannot.
fn is_name(k: &Node) -> bool {
    !matches!(
        k.value,
        Value::Seq(_) | Value::Map(_) | Value::Scalar(Scalar::Null)
    )
}

/// A key past [`limits::STRING_BYTES`]: reported by [`check_keys`], and
/// not walked into (every error below it would quote it).
fn oversized(k: &Node) -> bool {
    matches!(&k.value, Value::Scalar(Scalar::Str(s)) if s.len() > limits::STRING_BYTES.max_usize())
}

/// Names (of services, groups, variables) must be plain words: a list, a
/// mapping or nothing cannot be a key. Keys are strings and bounded like
/// them; `names` bounds the keys that become cgroup directory names.
fn check_keys(
    entries: &[(Node, Node)],
    path: &str,
    names: Option<&Limit>,
    out: &mut Vec<WalkError>,
) {
    for (k, _) in entries {
        if !is_name(k) {
            out.push(WalkError::new(
                Code::ConfigType,
                k.pos,
                path,
                format!(
                    "{}: a key must be a name, found {}",
                    where_(path),
                    k.value.kind_name()
                ),
                "write the name as plain text before the colon".to_string(),
            ));
            continue;
        }
        let len = match &k.value {
            Value::Scalar(Scalar::Str(s)) => s.len(),
            _ => continue,
        };
        let (limit, hint) = match names {
            Some(l) => (
                l,
                "a service or group name becomes a cgroup directory name: shorten it",
            ),
            None => (
                &limits::STRING_BYTES,
                "a key is a short name: check the indentation and the colons",
            ),
        };
        if len > limit.max_usize() {
            out.push(WalkError::limit(limit, k.pos, path, len, hint));
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
    WalkError::new(
        Code::ConfigType,
        node.pos,
        path,
        format!(
            "{}: expected {expected}, found {}",
            if path.is_empty() { "the file" } else { path },
            describe(&node.value)
        ),
        hint.to_string(),
    )
}

/// What makes two keys the same name: their text, whatever the spelling
/// YAML read (`16`, `0x10` and `0o20` are all the integer 16, and `16` and
/// `"16"` name the same service). `None` for keys that are not names.
fn key_identity(k: &Node) -> Option<Cow<'_, str>> {
    match &k.value {
        Value::Scalar(Scalar::Str(s)) => Some(Cow::Borrowed(s)),
        Value::Scalar(Scalar::Null) | Value::Seq(_) | Value::Map(_) => None,
        Value::Scalar(other) => Some(Cow::Owned(other.to_string())),
    }
}

/// Every key that repeats an earlier one in the same mapping, with both
/// locations. One pass with a hash of borrowed keys: an 80k-key mapping
/// costs 80k lookups, not 3.2e9 comparisons.
fn check_duplicates(entries: &[(Node, Node)], path: &str, out: &mut Vec<WalkError>) {
    let mut seen: HashMap<Cow<'_, str>, Pos> = HashMap::with_capacity(entries.len());
    for (k, _) in entries {
        let Some(id) = key_identity(k) else {
            continue;
        };
        match seen.entry(id) {
            Entry::Vacant(slot) => {
                slot.insert(k.pos);
            }
            Entry::Occupied(slot) => {
                let (key, first) = (slot.key(), *slot.get());
                let numeric = matches!(k.value, Value::Scalar(Scalar::Int(_) | Scalar::Float(_)));
                let mut e = WalkError::new(
                    Code::ConfigDuplicateKey,
                    k.pos,
                    &join(path, key),
                    format!(
                        "`{key}` appears twice in {} (first at line {}, column {})",
                        where_(path),
                        first.line,
                        first.column
                    ),
                    if numeric {
                        format!(
                            "YAML reads both keys as the number {key}, so one would silently replace the other: keep one of them (the first is at line {}), or quote each name to keep both as text",
                            first.line
                        )
                    } else {
                        format!("keep one of them (the first is at line {})", first.line)
                    },
                );
                e.context
                    .push(("first".into(), format!("{}:{}", first.line, first.column)));
                out.push(e);
            }
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

pub use crate::error::closest;

/// Suggestions for many unknown words against one set of known names: each
/// distinct word is looked up once, and only the first
/// [`limits::ERRORS_PER_KIND`] distinct words at all, as many as a report
/// shows of one kind. `depends_on` naming 5,000 unknown services among
/// 5,000 defined ones would otherwise compare every pair.
pub struct Suggestions<'a> {
    known: Vec<&'a str>,
    seen: HashMap<String, Option<&'a str>>,
}

impl<'a> Suggestions<'a> {
    pub fn new(known: &[&'a str]) -> Self {
        Suggestions {
            known: known.to_vec(),
            seen: HashMap::new(),
        }
    }

    /// [`closest`], remembered; `None` once the budget of words is spent.
    pub fn closest(&mut self, word: &str) -> Option<&'a str> {
        if let Some(hit) = self.seen.get(word) {
            return *hit;
        }
        if self.seen.len() >= limits::ERRORS_PER_KIND.max_usize() {
            return None;
        }
        let hit = closest(word, &self.known);
        self.seen.insert(word.to_string(), hit);
        hit
    }

    /// The known names for a message, at most [`SHOWN_NAMES`] of them.
    pub fn list(&self) -> String {
        name_list(&self.known)
    }
}

/// How many names a message lists before "and N more".
pub const SHOWN_NAMES: usize = 10;

/// `a, b, c` or `a, b, ... (and 4990 more)`: a message names a few, not
/// every service in a file of thousands.
pub fn name_list(names: &[&str]) -> String {
    let shown = names.len().min(SHOWN_NAMES);
    let head = names[..shown].join(", ");
    match names.len() - shown {
        0 => head,
        more => format!("{head} (and {more} more)"),
    }
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

    /// A walk shaped like the top of a config: `services` (named, bounded
    /// by SERVICES) of sections with `env` and a list.
    fn walk_config(text: &str) -> Vec<WalkError> {
        let node: Node = serde_saphyr::from_str_with_options(text, {
            let mut o = serde_saphyr::Options::default();
            o.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
            o
        })
        .unwrap();
        let service = Shape::Section {
            doc: "",
            fields: vec![
                FieldShape {
                    name: "env",
                    doc: "",
                    shape: Shape::Map {
                        value: Box::new(String::shape()),
                    },
                },
                FieldShape {
                    name: "command",
                    doc: "",
                    shape: Shape::List {
                        item: Box::new(String::shape()),
                    },
                },
            ],
        };
        let shape = Shape::Section {
            doc: "",
            fields: vec![FieldShape {
                name: "services",
                doc: "",
                shape: Shape::Map {
                    value: Box::new(service),
                },
            }],
        };
        let mut out = Vec::new();
        walk(&node, &shape, "", &mut out);
        out
    }

    fn limit_of(e: &WalkError) -> &str {
        e.context
            .iter()
            .find(|(k, _)| k == "limit")
            .map_or("", |(_, v)| v.as_str())
    }

    #[test]
    fn lists_maps_strings_and_names_are_bounded_without_walking_further() {
        let items = vec!["x"; limits::LIST_ITEMS.max_usize() + 1].join(", ");
        let e = walk_config(&format!("services:\n  web:\n    command: [{items}]\n"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].code, Code::ConfigLimit);
        assert_eq!(limit_of(&e[0]), "list_items");
        assert_eq!(
            e[0].pos,
            Pos {
                line: 3,
                column: 14
            }
        );

        // Past ENV_ENTRIES: one error, and the duplicate keys inside are
        // not looked at.
        let vars: String = (0..=limits::ENV_ENTRIES.max)
            .map(|_| "A: 1, ".to_string())
            .collect();
        let e = walk_config(&format!("services:\n  web:\n    env: {{{vars}}}\n"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(limit_of(&e[0]), "env_entries");

        let long = "x".repeat(limits::STRING_BYTES.max_usize() + 1);
        let e = walk_config(&format!("services:\n  web:\n    command: [{long}]\n"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(limit_of(&e[0]), "string_bytes");
        assert!(
            e[0].message.len() < 200,
            "the message quotes the value whole"
        );

        let name = "n".repeat(limits::NAME_BYTES.max_usize() + 1);
        let e = walk_config(&format!("services:\n  {name}:\n    command: [a]\n"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(limit_of(&e[0]), "name_bytes");
        assert_eq!(e[0].pos, Pos { line: 2, column: 3 });
        let key = "k".repeat(limits::STRING_BYTES.max_usize() + 1);
        // (YAML allows implicit keys of 1024 characters: these are explicit.)
        let e = walk_config(&format!(
            "? {key}\n: 1\nservices:\n  web:\n    env:\n      ? {key}\n      : [x]\n"
        ));
        assert_eq!(
            e.len(),
            2,
            "only the keys' limit, not the unknown key or the list: {e:?}"
        );
        assert!(e.iter().all(|w| limit_of(w) == "string_bytes"));
        assert!(e.iter().all(|w| w.message.len() < 200));
        // An env name is a string, not a cgroup name.
        let e = walk_config(&format!("services:\n  web:\n    env: {{{name}: x}}\n"));
        assert!(e.is_empty(), "{e:?}");
    }

    #[test]
    fn equal_keys_are_duplicates_whatever_their_spelling() {
        let e = walk_config("services:\n  16: {}\n  0x10: {}\n  \"16\": {}\n  0o20: {}\n");
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e.iter().all(|w| w.code == Code::ConfigDuplicateKey));
        assert!(
            e.iter()
                .all(|w| w.context == [("first".into(), "2:3".into())])
        );
        assert_eq!(e[0].pos, Pos { line: 3, column: 3 });
        assert!(e[0].suggestion.contains("number 16"), "{}", e[0].suggestion);
        let e = walk_config("services:\n  web:\n    env: {A: 1, B: 2, A: 3}\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].path, "services.web.env.A");
        assert!(
            e[0].message.contains("first at line 3, column 11"),
            "{}",
            e[0].message
        );
    }

    #[test]
    fn duplicate_check_is_linear() {
        // 4,095 distinct keys and one repeat: found, in one hash pass.
        let mut text = String::from("services:\n  web:\n    env:\n");
        for i in 0..limits::ENV_ENTRIES.max - 1 {
            text += &format!("      K{i}: v\n");
        }
        text += "      K7: again\n";
        let e = walk_config(&text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].code, Code::ConfigDuplicateKey);
    }

    #[test]
    fn suggestions_are_computed_once_per_word_and_bounded() {
        let known = ["web", "worker", "db"];
        let mut s = Suggestions::new(&known);
        assert_eq!(s.closest("wbe"), Some("web"));
        assert_eq!(s.closest("wbe"), Some("web"));
        assert_eq!(s.seen.len(), 1);
        for i in 0..100 {
            s.closest(&format!("unknown{i}"));
        }
        assert_eq!(s.seen.len(), limits::ERRORS_PER_KIND.max_usize());
        // Past the budget, a new word gets no suggestion; a known one keeps its.
        assert_eq!(s.closest("dbb"), None);
        assert_eq!(s.closest("wbe"), Some("web"));
        assert_eq!(s.list(), "web, worker, db");
    }

    #[test]
    fn name_lists_are_cut() {
        let names: Vec<String> = (0..25).map(|i| format!("s{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_eq!(
            name_list(&refs),
            "s0, s1, s2, s3, s4, s5, s6, s7, s8, s9 (and 15 more)"
        );
        assert_eq!(name_list(&refs[..2]), "s0, s1");
    }

    #[test]
    fn merge_of_entries_is_by_name_and_keeps_order() {
        let e = |pairs: &[(&str, &str)]| {
            Entries(
                pairs
                    .iter()
                    .map(|(k, v)| {
                        (
                            Spanned::new(
                                k.to_string(),
                                serde_saphyr::Location::UNKNOWN,
                                serde_saphyr::Location::UNKNOWN,
                            ),
                            Spanned::new(
                                v.to_string(),
                                serde_saphyr::Location::UNKNOWN,
                                serde_saphyr::Location::UNKNOWN,
                            ),
                        )
                    })
                    .collect::<Vec<_>>(),
            )
        };
        let merged = e(&[("A", "1"), ("B", "2")]).merge(e(&[("C", "3"), ("A", "4"), ("C", "5")]));
        let got: Vec<(&str, &str)> = merged
            .0
            .iter()
            .map(|(k, v)| (k.value.as_str(), v.value.as_str()))
            .collect();
        assert_eq!(got, [("A", "4"), ("B", "2"), ("C", "5")]);
        assert_eq!(merged.weight(), 3);
        let empty: Entries<String> = Entries::default();
        assert_eq!(empty.merge(e(&[("A", "1")])).0.len(), 1);
    }

    #[test]
    fn field_names_drop_raw_prefix() {
        assert_eq!(field_name("r#for"), "for");
        assert_eq!(field_name("max"), "max");
    }
}
