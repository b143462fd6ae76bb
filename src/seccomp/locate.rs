//! Where each member and element of a JSON document starts, by JSON path
//! (`syscalls[3].action`). A check that runs after parsing looks up the line
//! and column of the path it complains about; a serde error, which knows only
//! a line and column, looks up the path it happened in.
//!
//! ```text
//! {"syscalls": [            syscalls        1:2
//!   {"names": ["read"],     syscalls[0]     2:3   syscalls[0].names 2:4
//!    "action": "X"}]}       syscalls[0].action 3:4
//! ```

use crate::error::Pos;

/// (path, where the member's key or the element's first character is), in
/// document order, so positions only grow.
#[derive(Debug, Default)]
pub struct JsonIndex(Vec<(String, Pos)>);

impl JsonIndex {
    /// Indexes `text`, which should be valid JSON; on malformed input it
    /// keeps what it read before the fault.
    pub fn new(text: &str) -> JsonIndex {
        let mut s = Scan {
            b: text.as_bytes(),
            i: 0,
            line: 1,
            line_start: 0,
            out: Vec::new(),
        };
        let _ = s.value("", 0);
        JsonIndex(s.out)
    }

    /// Where the member or element at `path` starts.
    pub fn pos(&self, path: &str) -> Option<Pos> {
        self.0.iter().find(|(p, _)| p == path).map(|(_, pos)| *pos)
    }

    /// The innermost path that starts at or before `pos` (an error serde
    /// reports at the end of a key or value lies inside that member).
    pub fn path_at(&self, pos: Pos) -> Option<&str> {
        self.0
            .iter()
            .take_while(|(_, p)| *p <= pos)
            .last()
            .map(|(path, _)| path.as_str())
    }
}

/// A JSON nesting deeper than this is not a seccomp profile.
const MAX_DEPTH: usize = 64;

struct Scan<'a> {
    b: &'a [u8],
    i: usize,
    line: u32,
    line_start: usize,
    out: Vec<(String, Pos)>,
}

impl Scan<'_> {
    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: u32::try_from(self.i - self.line_start + 1).unwrap_or(u32::MAX),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            match c {
                b'\n' => {
                    self.i += 1;
                    self.line += 1;
                    self.line_start = self.i;
                }
                b' ' | b'\t' | b'\r' => self.i += 1,
                _ => break,
            }
        }
    }

    fn value(&mut self, path: &str, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.skip_ws();
        match self.peek()? {
            b'{' => {
                self.i += 1;
                loop {
                    self.skip_ws();
                    match self.peek()? {
                        b'}' => {
                            self.i += 1;
                            return Some(());
                        }
                        b',' => self.i += 1,
                        b'"' => {
                            let at = self.pos();
                            let key = self.string()?;
                            let member = if path.is_empty() {
                                key
                            } else {
                                format!("{path}.{key}")
                            };
                            self.out.push((member.clone(), at));
                            self.skip_ws();
                            if self.peek()? != b':' {
                                return None;
                            }
                            self.i += 1;
                            self.value(&member, depth + 1)?;
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.i += 1;
                let mut n = 0;
                loop {
                    self.skip_ws();
                    match self.peek()? {
                        b']' => {
                            self.i += 1;
                            return Some(());
                        }
                        b',' => self.i += 1,
                        _ => {
                            let element = format!("{path}[{n}]");
                            self.out.push((element.clone(), self.pos()));
                            self.value(&element, depth + 1)?;
                            n += 1;
                        }
                    }
                }
            }
            b'"' => self.string().map(drop),
            _ => {
                // A number, true, false or null: up to the next delimiter.
                while let Some(c) = self.peek() {
                    if matches!(c, b',' | b'}' | b']') || c.is_ascii_whitespace() {
                        break;
                    }
                    self.i += 1;
                }
                Some(())
            }
        }
    }

    /// A string at `"`, returned raw (escapes kept: paths only name keys).
    fn string(&mut self) -> Option<String> {
        self.i += 1;
        let start = self.i;
        loop {
            match self.peek()? {
                b'\\' => self.i += 2,
                b'"' => {
                    let s = String::from_utf8_lossy(self.b.get(start..self.i)?).into_owned();
                    self.i += 1;
                    return Some(s);
                }
                b'\n' => return None,
                _ => self.i += 1,
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn p(line: u32, column: u32) -> Pos {
        Pos { line, column }
    }

    const DOC: &str = "{\"defaultAction\": \"X\",\n \"syscalls\": [\n  {\"names\": [\"read\", \"write\"],\n   \"action\": \"Y\", \"args\": [{\"index\": 0}]}\n ]\n}";

    #[test]
    fn every_member_and_element_has_its_position() {
        let ix = JsonIndex::new(DOC);
        assert_eq!(ix.pos("defaultAction"), Some(p(1, 2)));
        assert_eq!(ix.pos("syscalls"), Some(p(2, 2)));
        assert_eq!(ix.pos("syscalls[0]"), Some(p(3, 3)));
        assert_eq!(ix.pos("syscalls[0].names"), Some(p(3, 4)));
        assert_eq!(ix.pos("syscalls[0].names[1]"), Some(p(3, 22)));
        assert_eq!(ix.pos("syscalls[0].action"), Some(p(4, 4)));
        assert_eq!(ix.pos("syscalls[0].args[0]"), Some(p(4, 28)));
        assert_eq!(ix.pos("syscalls[0].args[0].index"), Some(p(4, 29)));
        assert_eq!(ix.pos("syscalls[1]"), None);
    }

    #[test]
    fn a_position_names_the_member_it_is_in() {
        let ix = JsonIndex::new(DOC);
        // serde reports an unknown field or a bad value at its end.
        assert_eq!(ix.path_at(p(4, 17)), Some("syscalls[0].action"));
        assert_eq!(ix.path_at(p(1, 21)), Some("defaultAction"));
        assert_eq!(ix.path_at(p(1, 1)), None);
    }

    #[test]
    fn malformed_input_keeps_what_came_before() {
        let ix = JsonIndex::new("{\"a\": [1, 2], \"b\": {\"c\": ");
        assert_eq!(ix.pos("a[1]"), Some(p(1, 11)));
        assert_eq!(ix.pos("b.c"), Some(p(1, 21)));
        let deep = "[".repeat(200);
        assert!(JsonIndex::new(&deep).pos("[0]").is_some());
    }
}
