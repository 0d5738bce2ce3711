//! VuePress-style YAML front matter. `title` and `lang` are used; other keys
//! are kept only for `{{ $frontmatter.key }}` references.

use std::collections::BTreeMap;

use anyhow::{Context, Result};

/// The scalar values of a chapter's front matter.
#[derive(Debug, Default, Clone)]
pub struct FrontMatter {
    pub title: Option<String>,
    pub lang: Option<String>,
    values: BTreeMap<String, String>,
}

impl FrontMatter {
    /// A scalar value by key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }
}

/// Parses the YAML between the `---` lines.
pub fn parse(yaml: &str) -> Result<FrontMatter> {
    let value: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(yaml).context("front matter is not valid YAML")?;

    let mut values = BTreeMap::new();
    if let serde_yaml_ng::Value::Mapping(map) = value {
        for (k, v) in map {
            let (Some(k), Some(v)) = (scalar(&k), scalar(&v)) else {
                continue;
            };
            values.insert(k, v);
        }
    }

    Ok(FrontMatter {
        title: values.get("title").cloned(),
        lang: values.get("lang").cloned(),
        values,
    })
}

fn scalar(value: &serde_yaml_ng::Value) -> Option<String> {
    match value {
        serde_yaml_ng::Value::String(s) => Some(s.clone()),
        serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
        serde_yaml_ng::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}
