//! The JSON of `mainstream plan --json` and `mainstream simulate --json`,
//! written by serde_json from the reports' own view structs.

use serde::Serialize;

/// `value` as compact JSON; non-finite numbers (which the planners never
/// produce) become `null`.
pub(crate) fn to_json(value: &impl Serialize) -> String {
    // Plain structs of numbers, strings, options and lists: serde_json
    // cannot fail on them (it fails only on non-string map keys and on
    // failing `Serialize` impls).
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Sample<'a> {
        name: &'a str,
        x: f64,
        missing: Option<f64>,
        list: Vec<u32>,
    }

    #[test]
    fn strings_are_escaped_and_non_finite_numbers_are_null() {
        let s = to_json(&Sample {
            name: "a \"b\"\n\u{1}",
            x: f64::NAN,
            missing: None,
            list: vec![1, 2],
        });
        assert_eq!(
            s,
            r#"{"name":"a \"b\"\n\u0001","x":null,"missing":null,"list":[1,2]}"#
        );
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["list"][1], 2);
    }
}
