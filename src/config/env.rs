//! Environment overrides: `KRAKEN_PAPER__SECTION__KEY=value` sets the config key
//! `section.key`, after the file and before validation. They cannot silently miss:
//!
//! - Levels are separated by `__`. The valid keys are not listed by hand: they are the
//!   serialized [`Config::default`] merged with the file being loaded. Struct fields match
//!   case-insensitively (`RISK__MAX_DRAWDOWN` → `risk.max_drawdown`); map keys, such as the
//!   assets under `account.balances`, keep the case written (`BALANCES__USD` → `USD`), or
//!   take the case of an entry that is already there.
//! - Which objects are maps is asked of serde itself: a config struct refuses an unknown
//!   field (`deny_unknown_fields`), a map does not ([`KeyTree::is_map`]).
//! - A variable that names no key is an error naming it and the nearest key (edit distance).
//! - A value is read as YAML, as if written in the file (`0.05`, `true`, `2h`,
//!   `[BTC/USD, ETH/USD]`); a list key also takes `A,B,C`.
//!
//! The single-underscore secrets (`KRAKEN_PAPER_API_TOKEN`) are not under the prefix.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value as Json;
use yaml_serde::Value as Yaml;

use super::{Config, ENV_PREFIX};

/// Separator of key levels in a variable name (and between the prefix and the first level).
pub const ENV_SEPARATOR: &str = "__";

/// A key name that no config struct has: inserted to ask serde whether an object is a map.
const PROBE: &str = "__kraken_paper_probe__";

/// One override as applied: printed by `run` and `validate-config` as
/// `env: risk.max_drawdown = 0.05 (KRAKEN_PAPER__RISK__MAX_DRAWDOWN)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvOverride {
    /// The variable's name.
    pub var: String,
    /// The config key it sets, dotted (`account.balances.USD`).
    pub key: String,
    /// The value as given.
    pub value: String,
}

impl fmt::Display for EnvOverride {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "env: {} = {} ({})", self.key, self.value, self.var)
    }
}

/// Why an environment variable under `KRAKEN_PAPER__` could not be applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// The variable names no config key.
    #[error("unknown environment variable {var}: no key {key}{}", did_you_mean(.nearest))]
    UnknownKey {
        /// The variable's name.
        var: String,
        /// The key it would set.
        key: String,
        /// The nearest existing key, by edit distance.
        nearest: Option<String>,
    },
    /// The value is not YAML.
    #[error("environment variable {var} (key {key}): value {value:?} is not YAML: {reason}")]
    BadValue {
        /// The variable's name.
        var: String,
        /// The key it sets.
        key: String,
        /// The value.
        value: String,
        /// The parser's message.
        reason: String,
    },
}

fn did_you_mean(nearest: &Option<String>) -> String {
    nearest.as_ref().map(|k| format!(" (did you mean {k}?)")).unwrap_or_default()
}

/// The overrides found in `env`, resolved against the keys of the default config and of the
/// file `file_yaml`: each as applied, and all of them as one YAML document (a nested mapping)
/// to lay over the file. Variables are taken in name order.
pub fn resolve(
    file_yaml: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(Vec<EnvOverride>, Option<String>), EnvError> {
    let prefix = format!("{ENV_PREFIX}{ENV_SEPARATOR}");
    let vars: BTreeMap<String, String> = env.into_iter().filter(|(k, _)| k.starts_with(&prefix)).collect();
    if vars.is_empty() {
        return Ok((Vec::new(), None));
    }
    let tree = KeyTree::new(file_yaml);
    let mut applied = Vec::new();
    let mut doc = yaml_serde::Mapping::new();
    for (var, raw) in vars {
        let segments: Vec<&str> = var[prefix.len()..].split(ENV_SEPARATOR).collect();
        let (path, is_list) = tree.resolve(&var, &segments)?;
        let key = path.join(".");
        let value = parse_value(&raw, is_list).map_err(|reason| EnvError::BadValue {
            var: var.clone(),
            key: key.clone(),
            value: raw.clone(),
            reason,
        })?;
        insert(&mut doc, &path, value);
        applied.push(EnvOverride { var, key, value: raw });
    }
    let text = yaml_serde::to_string(&doc).map_err(|e| EnvError::BadValue {
        var: applied.iter().map(|o| o.var.as_str()).collect::<Vec<_>>().join(", "),
        key: String::new(),
        value: String::new(),
        reason: e.to_string(),
    })?;
    Ok((applied, Some(text)))
}

/// The key tree: the serialized default config with the file's keys laid over it.
struct KeyTree {
    /// `Config::default()` as JSON: what serde is asked about (it deserializes back).
    default: Json,
    /// `default` merged with the file (map entries the file adds).
    merged: Json,
}

impl KeyTree {
    fn new(file_yaml: &str) -> KeyTree {
        let default = serde_json::to_value(Config::default()).unwrap_or(Json::Null);
        let mut merged = default.clone();
        // A file that does not parse is reported by the loader; its keys are just not known.
        if let Ok(file) = yaml_serde::from_str::<Json>(file_yaml) {
            merge(&mut merged, file);
        }
        KeyTree { default, merged }
    }

    /// The key path `segments` name (case resolved), and whether it is a list key.
    fn resolve(&self, var: &str, segments: &[&str]) -> Result<(Vec<String>, bool), EnvError> {
        let mut path: Vec<String> = Vec::new();
        // None once the path has gone below a map entry that is not in the tree.
        let mut node = Some(&self.merged);
        for (i, seg) in segments.iter().enumerate() {
            let unknown = |path: &[String]| {
                let key = path
                    .iter()
                    .cloned()
                    .chain(segments[i..].iter().map(|s| s.to_ascii_lowercase()))
                    .collect::<Vec<_>>()
                    .join(".");
                let nearest = self.nearest(&key);
                EnvError::UnknownKey { var: var.to_string(), key, nearest }
            };
            if seg.is_empty() {
                return Err(unknown(&path));
            }
            match node {
                Some(Json::Object(children)) => {
                    // The exact name first: a map may hold `USD` and `usd` alike.
                    let existing = children
                        .keys()
                        .find(|k| k.as_str() == *seg)
                        .or_else(|| children.keys().find(|k| k.eq_ignore_ascii_case(seg)))
                        .cloned();
                    let name = match existing {
                        Some(k) => k,
                        None if self.is_map(&path) => (*seg).to_string(),
                        None => return Err(unknown(&path)),
                    };
                    node = children.get(&name);
                    path.push(name);
                }
                Some(_) => return Err(unknown(&path)),
                None => path.push(seg.to_ascii_lowercase()),
            }
        }
        if path.is_empty() {
            return Err(EnvError::UnknownKey { var: var.to_string(), key: String::new(), nearest: None });
        }
        Ok((path, matches!(node, Some(Json::Array(_)))))
    }

    /// Whether the object at `path` is a map (any child name) rather than a config struct:
    /// serde is asked to read the default config with a probe entry added there. A struct
    /// refuses it as an unknown field; a map takes it or fails on its value.
    fn is_map(&self, path: &[String]) -> bool {
        let mut probe = self.default.clone();
        let mut node = &mut probe;
        for seg in path {
            match node.get_mut(seg) {
                Some(n) => node = n,
                // Not in the default: a map entry the file added (maps of structs do not
                // exist in the config), so its children are fields.
                None => return false,
            }
        }
        let Some(obj) = node.as_object_mut() else { return false };
        obj.insert(PROBE.to_string(), Json::Null);
        match serde_json::from_value::<Config>(probe) {
            Ok(_) => true,
            Err(e) => !e.to_string().contains(&format!("unknown field `{PROBE}`")),
        }
    }

    /// The existing key nearest to `key` by edit distance (ties: the first in key order).
    fn nearest(&self, key: &str) -> Option<String> {
        let mut keys = Vec::new();
        collect_keys(&self.merged, "", &mut keys);
        keys.into_iter().map(|k| (edit_distance(key, &k.to_ascii_lowercase()), k)).min().map(|(_, k)| k)
    }
}

/// Lays `over` on `base`: objects merge key by key, anything else but null replaces (an
/// empty file or section keeps the default's keys).
fn merge(base: &mut Json, over: Json) {
    match (base, over) {
        (_, Json::Null) => {}
        (Json::Object(b), Json::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Every key of the tree, dotted: inner objects and leaves alike.
fn collect_keys(node: &Json, prefix: &str, out: &mut Vec<String>) {
    if let Json::Object(children) = node {
        for (k, v) in children {
            let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            collect_keys(v, &key, out);
            out.push(key);
        }
    }
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(here + 1);
            prev = here;
        }
    }
    row[b.len()]
}

/// A value as YAML. A list key also takes `A,B,C` (each item a YAML scalar); an empty value
/// is the empty string (or the empty list).
fn parse_value(raw: &str, is_list: bool) -> Result<Yaml, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Ok(if is_list { Yaml::Sequence(Vec::new()) } else { Yaml::String(String::new()) });
    }
    if is_list && !trimmed.starts_with('[') {
        let items = trimmed.split(',').map(|item| {
            let item = item.trim();
            yaml_serde::from_str::<Yaml>(item).unwrap_or_else(|_| Yaml::String(item.to_string()))
        });
        return Ok(Yaml::Sequence(items.collect()));
    }
    yaml_serde::from_str::<Yaml>(raw).map_err(|e| e.to_string())
}

/// Sets `path` in the nested mapping `doc` to `value`.
fn insert(doc: &mut yaml_serde::Mapping, path: &[String], value: Yaml) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut map = doc;
    for seg in parents {
        let key = Yaml::String(seg.clone());
        if !matches!(map.get(&key), Some(Yaml::Mapping(_))) {
            map.insert(key.clone(), Yaml::Mapping(yaml_serde::Mapping::new()));
        }
        match map.get_mut(&key) {
            Some(Yaml::Mapping(m)) => map = m,
            _ => return,
        }
    }
    map.insert(Yaml::String(last.clone()), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn struct_fields_match_any_case_and_map_keys_keep_theirs() {
        let (applied, _) = resolve(
            "",
            env(&[
                ("KRAKEN_PAPER__RISK__MAX_DRAWDOWN", "0.05"),
                ("KRAKEN_PAPER__ACCOUNT__BALANCES__USD", "5000"),
                ("KRAKEN_PAPER__ACCOUNT__BALANCES__ETH", "2"),
                ("KRAKEN_PAPER__EXECUTION__MARGIN__FEE_PCT__XBT", "0.02"),
            ]),
        )
        .unwrap();
        let keys: Vec<&str> = applied.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "account.balances.ETH",
                "account.balances.USD",
                "execution.margin.fee_pct.XBT",
                "risk.max_drawdown"
            ]
        );
        assert_eq!(
            applied[3].to_string(),
            "env: risk.max_drawdown = 0.05 (KRAKEN_PAPER__RISK__MAX_DRAWDOWN)"
        );
    }

    #[test]
    fn map_keys_take_the_case_of_an_entry_already_there() {
        let (applied, _) = resolve(
            "account:\n  balances:\n    Eth: 1\n",
            env(&[("KRAKEN_PAPER__ACCOUNT__BALANCES__ETH", "2")]),
        )
        .unwrap();
        assert_eq!(applied[0].key, "account.balances.Eth");
    }

    #[test]
    fn maps_and_structs_are_told_apart_by_serde() {
        let tree = KeyTree::new("");
        let path = |p: &str| p.split('.').map(String::from).collect::<Vec<_>>();
        for map in ["account.balances", "execution.margin.fee_pct", "execution.margin.allowance"] {
            assert!(tree.is_map(&path(map)), "{map}");
        }
        for strukt in ["risk", "feed", "feed.reconnect", "execution.margin", "logging.file"] {
            assert!(!tree.is_map(&path(strukt)), "{strukt}");
        }
        assert!(!tree.is_map(&[]), "the root is the Config struct");
    }

    #[test]
    fn unknown_variable_names_the_nearest_key() {
        let e = resolve("", env(&[("KRAKEN_PAPER__RISK__MAX_DRAWDWN", "0.05")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown environment variable KRAKEN_PAPER__RISK__MAX_DRAWDWN: no key risk.max_drawdwn \
             (did you mean risk.max_drawdown?)"
        );
        for (var, key) in [
            ("KRAKEN_PAPER__RISKK__MAX_DRAWDOWN", "riskk.max_drawdown"),
            ("KRAKEN_PAPER__RISK__MAX_DRAWDOWN__X", "risk.max_drawdown.x"),
            ("KRAKEN_PAPER__", ""),
            ("KRAKEN_PAPER__RISK____X", "risk..x"),
        ] {
            match resolve("", env(&[(var, "1")])) {
                Err(EnvError::UnknownKey { var: v, key: k, .. }) => {
                    assert_eq!((v.as_str(), k.as_str()), (var, key))
                }
                other => panic!("{var}: {other:?}"),
            }
        }
    }

    #[test]
    fn secrets_and_other_variables_are_not_overrides() {
        let (applied, doc) = resolve(
            "",
            env(&[("KRAKEN_PAPER_API_TOKEN", "s3cret"), ("PATH", "/bin"), ("KRAKEN_PAPERX", "1")]),
        )
        .unwrap();
        assert!(applied.is_empty() && doc.is_none());
    }

    #[test]
    fn list_keys_take_commas_or_a_flow_list() {
        for raw in ["BTC/USD,ETH/USD", "BTC/USD, ETH/USD", "[BTC/USD, ETH/USD]"] {
            let (_, doc) = resolve("", env(&[("KRAKEN_PAPER__FEED__PAIRS", raw)])).unwrap();
            let v: Yaml = yaml_serde::from_str(&doc.unwrap()).unwrap();
            assert_eq!(
                v["feed"]["pairs"],
                Yaml::Sequence(vec![Yaml::String("BTC/USD".into()), Yaml::String("ETH/USD".into())]),
                "{raw}"
            );
        }
    }

    #[test]
    fn values_are_yaml() {
        assert_eq!(parse_value("0.05", false).unwrap(), yaml_serde::from_str::<Yaml>("0.05").unwrap());
        assert_eq!(parse_value("true", false).unwrap(), Yaml::Bool(true));
        assert_eq!(parse_value("2h", false).unwrap(), Yaml::String("2h".into()));
        assert_eq!(parse_value("", false).unwrap(), Yaml::String(String::new()));
        assert_eq!(parse_value("1,2", true).unwrap(), yaml_serde::from_str::<Yaml>("[1, 2]").unwrap());
        assert!(parse_value("[unclosed", false).is_err());
    }

    #[test]
    fn edit_distance_counts_single_character_edits() {
        assert_eq!(edit_distance("risk.max_drawdwn", "risk.max_drawdown"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
