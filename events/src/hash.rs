//! The per-stream hash chain that makes tampering detectable.
//!
//! `hash = hex(SHA-256(prev_hash ‖ LF ‖ event_type ‖ LF ‖ canonical(data) ‖ LF ‖
//! canonical(metadata without "hash")))`, where `prev_hash` is the previous event's hash
//! in the same stream ([`GENESIS_HASH`] for revision 0) and `canonical` is JSON with object
//! keys sorted by their UTF-8 bytes, no insignificant white space, strings escaped as
//! serde_json escapes them and numbers as serde_json prints them. The hash is computed over
//! the event *as stored* (its original schema version), never over an upcast form, so an
//! auditor can recompute it from the raw log with any SHA-256 and JSON library.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// `prev_hash` of the first event of every stream.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Canonical JSON text of a value (see the module doc).
pub fn canonical_json(value: &Value) -> String {
    if maps_are_sorted() {
        // serde_json's map is a BTreeMap (byte order of keys) unless a crate in the build
        // switches on `preserve_order`: then its own output already is canonical.
        return value.to_string();
    }
    let mut out = String::with_capacity(256);
    write_canonical(value, &mut out);
    out
}

/// Whether serde_json serialises object keys sorted in this build (checked once).
fn maps_are_sorted() -> bool {
    static SORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SORTED.get_or_init(|| {
        let probe: Value = serde_json::from_str(r#"{"b":1,"a":2,"B":3}"#).unwrap_or(Value::Null);
        serde_json::to_string(&probe).is_ok_and(|s| s == r#"{"B":3,"a":2,"b":1}"#)
    })
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            // Sorted explicitly: serde_json's map order depends on a cargo feature
            // (`preserve_order`) that any crate in the build may switch on.
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_string(k, out);
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        Value::String(s) => push_string(s, out),
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn push_string(s: &str, out: &mut String) {
    // serde_json's string escaping is deterministic; reuse it rather than re-implement.
    out.push_str(&Value::String(s.to_owned()).to_string());
}

/// The hash of one event given its predecessor's hash. `metadata` must not contain `hash`
/// (a `hash` key, if present, is ignored).
pub fn chain_hash(prev_hash: &str, event_type: &str, data: &Value, metadata: &Value) -> String {
    let metadata = match metadata {
        Value::Object(map) if map.contains_key("hash") => {
            let mut without = map.clone();
            without.remove("hash");
            canonical_json(&Value::Object(without))
        }
        other => canonical_json(other),
    };
    chain_hash_of_canonical(prev_hash, event_type, &canonical_json(data), &metadata)
}

/// [`chain_hash`] over already canonical texts (writers that keep the text for storage).
pub fn chain_hash_of_canonical(prev_hash: &str, event_type: &str, data: &str, metadata: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [prev_hash, event_type, data] {
        hasher.update(part.as_bytes());
        hasher.update(b"\n");
    }
    hasher.update(metadata.as_bytes());
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_depth_and_drops_white_space() {
        let v = json!({"b": 1, "a": {"z": [1, {"y": "é\n", "x": null}], "c": true}});
        assert_eq!(canonical_json(&v), r#"{"a":{"c":true,"z":[1,{"x":null,"y":"é\n"}]},"b":1}"#);
    }

    #[test]
    fn the_fast_path_and_the_explicit_sort_agree() {
        let v = json!({"b": [{"z": 1, "A": 2.5}], "a": "x\"y", "é": null, "B": -1});
        let mut slow = String::new();
        write_canonical(&v, &mut slow);
        assert_eq!(canonical_json(&v), slow);
    }

    #[test]
    fn the_hash_ignores_a_hash_key_in_the_metadata_and_sees_every_other_change() {
        let data = json!({"k": "v"});
        let meta = json!({"actor": "a", "prev_hash": GENESIS_HASH});
        let h = chain_hash(GENESIS_HASH, "T", &data, &meta);
        let mut with_hash = meta.clone();
        with_hash["hash"] = json!(h);
        assert_eq!(chain_hash(GENESIS_HASH, "T", &data, &with_hash), h);
        assert_ne!(chain_hash(GENESIS_HASH, "U", &data, &meta), h);
        assert_ne!(chain_hash(GENESIS_HASH, "T", &json!({"k": "w"}), &meta), h);
        assert_ne!(chain_hash(&h, "T", &data, &meta), h);
        assert_ne!(chain_hash(GENESIS_HASH, "T", &data, &json!({"actor": "b"})), h);
    }
}
