//! docs/configuration.md documents every configuration key, and only keys that exist: the keys
//! are read from the config structs' source (`src/config.rs`, following nested sections from
//! `Config`) and compared with the reference table, both ways.

use std::collections::{BTreeMap, BTreeSet};

/// Field name and type name of each struct in the file.
fn structs(file: &syn::File) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out = BTreeMap::new();
    for item in &file.items {
        if let syn::Item::Struct(s) = item {
            let fields = s
                .fields
                .iter()
                .filter(|f| matches!(f.vis, syn::Visibility::Public(_)))
                .filter_map(|f| {
                    let name = f.ident.as_ref()?.to_string();
                    let ty = match &f.ty {
                        syn::Type::Path(p) => p.path.segments.last()?.ident.to_string(),
                        _ => String::new(),
                    };
                    Some((name, ty))
                })
                .collect();
            out.insert(s.ident.to_string(), fields);
        }
    }
    out
}

fn keys(
    structs: &BTreeMap<String, Vec<(String, String)>>,
    name: &str,
    prefix: &str,
    out: &mut BTreeSet<String>,
) {
    for (field, ty) in &structs[name] {
        let key = format!("{prefix}{field}");
        if structs.contains_key(ty) {
            keys(structs, ty, &format!("{key}."), out);
        } else {
            out.insert(key);
        }
    }
}

#[test]
fn the_configuration_reference_matches_the_code() {
    let root = env!("CARGO_MANIFEST_DIR");
    let src = std::fs::read_to_string(format!("{root}/src/config.rs")).unwrap();
    let file = syn::parse_file(&src).unwrap();
    let mut in_code = BTreeSet::new();
    keys(&structs(&file), "Config", "", &mut in_code);
    assert!(
        in_code.contains("federation.listen") && in_code.len() > 20,
        "{in_code:?}"
    );

    let doc = std::fs::read_to_string(format!("{root}/docs/configuration.md")).unwrap();
    let documented: BTreeSet<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect();

    let undocumented: Vec<_> = in_code.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&in_code).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "keys in the code but not in docs/configuration.md: {undocumented:?}; \
         documented keys the code does not have: {unknown:?}"
    );
}
