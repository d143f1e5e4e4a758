//! Label and field selectors as the API server parses them (`apimachinery/pkg/labels`,
//! `apimachinery/pkg/fields`): the equality forms, set forms for labels, and the supported
//! field names of each resource.

use std::collections::BTreeMap;

use crate::server::status::ApiError;

/// One `key=value` / `key!=value` term of a field selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldTerm {
    /// The field (`spec.nodeName`).
    pub field: String,
    /// `=`/`==` (true) or `!=` (false).
    pub equal: bool,
    /// The value.
    pub value: String,
}

/// A parsed field selector: every term must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector(pub Vec<FieldTerm>);

/// Split on unescaped `sep`, unescaping `\x` (the field selector escape rules).
fn split_escaped(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next()
                && let Some(last) = out.last_mut()
            {
                last.push('\\');
                last.push(n);
            }
        } else if c == sep {
            out.push(String::new());
        } else if let Some(last) = out.last_mut() {
            last.push(c);
        }
    }
    out
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl FieldSelector {
    /// `fields.ParseSelector`; an empty string selects everything.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        if s.trim().is_empty() {
            return Ok(FieldSelector(terms));
        }
        for part in split_escaped(s, ',') {
            let (field, equal, value) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            terms.push(FieldTerm {
                field: field.trim().to_string(),
                equal,
                value: unescape(value),
            });
        }
        Ok(FieldSelector(terms))
    }

    /// Refuse fields the resource does not index (`field label not supported: x`).
    pub fn check(&self, supported: &[&str]) -> Result<(), ApiError> {
        match self
            .0
            .iter()
            .find(|t| !supported.contains(&t.field.as_str()))
        {
            Some(t) => Err(ApiError::bad_request(format!(
                "field label not supported: {}",
                t.field
            ))),
            None => Ok(()),
        }
    }

    /// Whether an object whose fields `get` returns matches (a missing field is "").
    pub fn matches(&self, get: impl Fn(&str) -> String) -> bool {
        self.0.iter().all(|t| (get(&t.field) == t.value) == t.equal)
    }
}

/// One label requirement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelRequirement {
    /// `k=v`, `k==v`, `k in (a,b)`.
    In(String, Vec<String>),
    /// `k!=v`, `k notin (a,b)` (also true when the label is absent).
    NotIn(String, Vec<String>),
    /// `k`.
    Exists(String),
    /// `!k`.
    DoesNotExist(String),
}

/// A parsed label selector: every requirement must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<LabelRequirement>);

impl LabelSelector {
    /// `labels.Parse` for the common forms; an empty string selects everything.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let bad = |why: &str| {
            ApiError::bad_request(format!("unable to parse requirement: {why} in {s:?}"))
        };
        // Split on commas outside parentheses.
        let mut parts = Vec::new();
        let (mut depth, mut cur) = (0i32, String::new());
        for c in s.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(std::mem::take(&mut cur));
                    continue;
                }
                _ => {}
            }
            cur.push(c);
        }
        parts.push(cur);
        let mut reqs = Vec::new();
        for p in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
            let set = |rest: &str| -> Result<Vec<String>, ApiError> {
                let inner = rest
                    .trim()
                    .strip_prefix('(')
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(|| bad("expected a set in parentheses"))?;
                Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
            };
            let req = if let Some(k) = p.strip_prefix('!') {
                LabelRequirement::DoesNotExist(k.trim().to_string())
            } else if let Some((k, v)) = p.split_once("!=") {
                LabelRequirement::NotIn(k.trim().to_string(), vec![v.trim().to_string()])
            } else if let Some((k, v)) = p.split_once("==") {
                LabelRequirement::In(k.trim().to_string(), vec![v.trim().to_string()])
            } else if let Some((k, v)) = p.split_once('=') {
                LabelRequirement::In(k.trim().to_string(), vec![v.trim().to_string()])
            } else if let Some((k, rest)) = p.split_once(" notin ") {
                LabelRequirement::NotIn(k.trim().to_string(), set(rest)?)
            } else if let Some((k, rest)) = p.split_once(" in ") {
                LabelRequirement::In(k.trim().to_string(), set(rest)?)
            } else if p.contains(['<', '>', '(', ')', ' ']) {
                return Err(bad(&format!("unsupported requirement {p:?}")));
            } else {
                LabelRequirement::Exists(p.to_string())
            };
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k));
        self.0.iter().all(|r| match r {
            LabelRequirement::In(k, vs) => get(k).is_some_and(|v| vs.contains(v)),
            LabelRequirement::NotIn(k, vs) => get(k).is_none_or(|v| !vs.contains(v)),
            LabelRequirement::Exists(k) => get(k).is_some(),
            LabelRequirement::DoesNotExist(k) => get(k).is_none(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_selectors() {
        let f = |k: &str| match k {
            "spec.nodeName" => "node1".to_string(),
            "status.phase" => "Running".to_string(),
            "metadata.name" => "a,b".to_string(),
            _ => String::new(),
        };
        let cases = [
            ("", true),
            ("spec.nodeName=node1", true),
            ("spec.nodeName==node1", true),
            ("spec.nodeName=node2", false),
            (
                "spec.nodeName=node1,status.phase!=Succeeded,status.phase!=Failed",
                true,
            ),
            ("status.phase!=Running", false),
            ("metadata.name=a\\,b", true),
            ("involvedObject.namespace=", true),
        ];
        for (s, want) in cases {
            assert_eq!(FieldSelector::parse(s).unwrap().matches(f), want, "{s}");
        }
        assert!(FieldSelector::parse("nonsense").is_err());
        let e = FieldSelector::parse("spec.foo=x")
            .unwrap()
            .check(&["spec.nodeName"])
            .unwrap_err();
        assert_eq!(e.message, "field label not supported: spec.foo");
    }

    #[test]
    fn label_selectors() {
        let labels = BTreeMap::from([
            ("app".to_string(), "web".to_string()),
            ("tier".to_string(), "front".to_string()),
        ]);
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app=db", false),
            ("app", true),
            ("!app", false),
            ("missing", false),
            ("!missing", true),
            ("missing!=x", true),
            ("app in (db, web)", true),
            ("app notin (db,web)", false),
            ("app=web,tier in (front)", true),
            ("app=web,tier=back", false),
        ];
        for (s, want) in cases {
            assert_eq!(
                LabelSelector::parse(s).unwrap().matches(Some(&labels)),
                want,
                "{s}"
            );
        }
        assert!(LabelSelector::parse("a in b").is_err());
        assert!(LabelSelector::parse("a > 3").is_err());
    }
}
