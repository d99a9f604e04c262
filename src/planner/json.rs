//! A minimal JSON writer for reports (the crate has no JSON dependency).
//!
//! Numbers use Rust's shortest round-trip formatting; non-finite numbers
//! (which the planners never produce) become `null`.

use std::fmt::Write;

/// Appends JSON to a string. The caller keeps objects and arrays balanced.
pub(crate) struct Json {
    out: String,
    /// Per open container: whether a value was already written.
    started: Vec<bool>,
    /// A key was just written; the next value follows it directly.
    after_key: bool,
}

impl Json {
    pub fn new() -> Json {
        Json {
            out: String::new(),
            started: vec![false],
            after_key: false,
        }
    }

    fn sep(&mut self) {
        if self.after_key {
            self.after_key = false;
            return;
        }
        if let Some(s) = self.started.last_mut() {
            if *s {
                self.out.push(',');
            }
            *s = true;
        }
    }

    pub fn begin_object(&mut self) -> &mut Self {
        self.sep();
        self.out.push('{');
        self.started.push(false);
        self
    }

    pub fn end_object(&mut self) -> &mut Self {
        self.started.pop();
        self.out.push('}');
        self
    }

    pub fn begin_array(&mut self) -> &mut Self {
        self.sep();
        self.out.push('[');
        self.started.push(false);
        self
    }

    pub fn end_array(&mut self) -> &mut Self {
        self.started.pop();
        self.out.push(']');
        self
    }

    /// Writes `"key":`; the next call writes its value.
    pub fn key(&mut self, k: &str) -> &mut Self {
        self.sep();
        self.quoted(k);
        self.out.push(':');
        self.after_key = true;
        self
    }

    pub fn str(&mut self, v: &str) -> &mut Self {
        self.sep();
        self.quoted(v);
        self
    }

    pub fn num(&mut self, v: f64) -> &mut Self {
        self.sep();
        if v.is_finite() {
            let _ = write!(self.out, "{v}");
        } else {
            self.out.push_str("null");
        }
        self
    }

    pub fn uint(&mut self, v: u64) -> &mut Self {
        self.sep();
        let _ = write!(self.out, "{v}");
        self
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.sep();
        self.out.push_str(if v { "true" } else { "false" });
        self
    }

    pub fn null(&mut self) -> &mut Self {
        self.sep();
        self.out.push_str("null");
        self
    }

    fn quoted(&mut self, s: &str) {
        self.out.push('"');
        for ch in s.chars() {
            match ch {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                '\r' => self.out.push_str("\\r"),
                '\t' => self.out.push_str("\\t"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(self.out, "\\u{:04x}", c as u32);
                }
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_values_get_commas_and_escapes() {
        let mut j = Json::new();
        j.begin_array();
        j.begin_object()
            .key("a")
            .num(1.5)
            .key("b\"")
            .str("x\ny")
            .key("c")
            .null()
            .end_object();
        j.begin_object()
            .key("n")
            .uint(3)
            .key("ok")
            .bool(true)
            .key("v")
            .begin_array()
            .num(f64::NAN)
            .num(0.1)
            .end_array()
            .end_object();
        j.end_array();
        assert_eq!(
            j.finish(),
            r#"[{"a":1.5,"b\"":"x\ny","c":null},{"n":3,"ok":true,"v":[null,0.1]}]"#
        );
    }
}
