//! The form-body event parser: `FormValue::parse` (PHP bracket keys), `EventEnvelope::from_form`
//! and `to_portal_event_as` (v1 `ONIMBOT*` and v2 `ONIMBOTV2*` events), on arbitrary bodies.
//!
//! Properties: nothing panics (errors are values); a parsed tree has a map at its root, no empty
//! key, no empty map, no deeper nesting than the limit and no more leaves than pairs; encoding
//! the tree back (`to_query_string`, PHP's `http_build_query`) and parsing it again gives the same
//! tree; the envelope keeps no credential in `data` and has a non-empty, upper-case event code;
//! a decoded event satisfies `common::check_event`.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use olbridge_core::domain::form::{FormLimits, FormValue};
use olbridge_core::domain::parse::{self, EventEnvelope};

const UNBOUNDED: FormLimits = FormLimits { max_bytes: usize::MAX, max_pairs: usize::MAX, max_depth: usize::MAX, max_key_len: usize::MAX };
const CREDENTIALS: [&str; 4] = ["access_token", "refresh_token", "application_token", "client_secret"];

/// Checks the shape of a subtree and returns (leaves, depth). `stripped`: the tree went through
/// `without_credentials`, so no credential key is left (and a map that held only credentials is
/// now empty, which is fine).
fn walk(node: &FormValue, stripped: bool) -> (usize, usize) {
    match node {
        FormValue::Text(_) => (1, 0),
        FormValue::Map(m) => {
            assert!(stripped || !m.is_empty(), "a parsed form has no empty map");
            m.iter().fold((0, 0), |(leaves, depth), (k, v)| {
                assert!(!k.is_empty(), "a parsed form has no empty key");
                assert!(!stripped || !CREDENTIALS.iter().any(|c| k.eq_ignore_ascii_case(c)), "credential {k:?} kept in data");
                let (l, d) = walk(v, stripped);
                (leaves + l, depth.max(d + 1))
            })
        }
    }
}

fuzz_target!(|body: &[u8]| {
    let limits = FormLimits::default();
    let form = match FormValue::parse(body, &limits) {
        Ok(form) => form,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let FormValue::Map(root) = &form else { panic!("the root of a parsed form is a map") };
    if !root.is_empty() {
        let (leaves, depth) = walk(&form, false);
        let pairs = body.split(|b| *b == b'&').filter(|p| !p.is_empty()).count();
        assert!(leaves <= pairs, "{leaves} leaves from {pairs} pairs");
        assert!(depth <= limits.max_depth, "depth {depth}");
    }
    let encoded = form.to_query_string();
    match FormValue::parse(encoded.as_bytes(), &UNBOUNDED) {
        Ok(again) => assert_eq!(again, form, "re-encoding changed the tree: {encoded}"),
        Err(e) => panic!("a re-encoded form does not parse: {e}"),
    }

    let Ok(env) = EventEnvelope::from_form(&form) else { return };
    assert!(!env.event.is_empty() && !env.event.chars().any(|c| c.is_ascii_lowercase()), "event code {:?}", env.event);
    walk(&env.data, true);
    let Some(portal) = common::portal() else { return };
    let _ = parse::to_portal_event(&env);
    match parse::to_portal_event_as(&env, portal.clone()) {
        Ok(Some(event)) => common::check_event(&event, &portal),
        Ok(None) => {}
        Err(e) => {
            let _ = (e.to_string(), e.is_too_large());
        }
    }
});
