//! The layer order of the server crate, as a table a test enforces: a
//! module may import (`crate::<module>`) only modules of a lower layer.
//! Capabilities share a layer, so none imports another; where one needs
//! another, it declares a port (a trait) and the composition root
//! (`app`) implements it. ARCHITECTURE.md draws the same table.

/// Every top-level module of the crate, by layer (lowest first).
pub(crate) const LAYERS: &[&[&str]] = &[
    // Leaves.
    &["validation"],
    &["domain", "config", "secrets", "tls"],
    // The toolkit capabilities are written with.
    &["http", "telemetry", "mail", "outbox"],
    // Capabilities.
    &[
        "ops",
        "identity",
        "clients",
        "locks",
        "ratelimit",
        "leaderboards",
        "events",
        "eventlog",
        "actions",
        "jobs",
        "notifications",
        "analytics",
        "realtime",
        "tasks",
        "syslog",
        "chat",
    ],
    // The composition root, and what the processes start with.
    &["app", "cli", "shutdown"],
    &["startup", "worker"],
];

/// The layer of a top-level module; `None` for one the table forgot.
pub(crate) fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use super::*;

    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src is readable") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// The top-level modules a line of code names with `crate::`, including
    /// the grouped form `use crate::{a::X, b};`.
    fn imported_modules(line: &str) -> Vec<String> {
        let mut found = Vec::new();
        for (at, _) in line.match_indices("crate::") {
            let rest = &line[at + "crate::".len()..];
            let names: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group.split([',', '}']).map(str::trim).collect(),
                None => vec![rest],
            };
            for name in names {
                let module: String = name.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !module.is_empty() {
                    found.push(module);
                }
            }
        }
        found
    }

    #[test]
    fn grouped_and_plain_imports_are_both_seen() {
        assert_eq!(imported_modules("use crate::http::{ApiError, ApiJson};"), ["http"]);
        assert_eq!(imported_modules("use crate::{domain::Principal, validation};"), ["domain", "validation"]);
        assert_eq!(imported_modules("    let x = crate::tls::install_tls_provider();"), ["tls"]);
    }

    #[test]
    fn every_module_imports_only_from_lower_layers() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        let mut violations = BTreeSet::new();
        for file in files {
            let relative = file.strip_prefix(&src).expect("under src");
            let first = relative.components().next().expect("a path").as_os_str().to_string_lossy().into_owned();
            let module = first.trim_end_matches(".rs");
            if matches!(module, "main" | "lib" | "layers") {
                continue; // the binary and the crate root sit above every layer; this file is the table
            }
            let Some(own) = layer_of(module) else {
                violations.insert(format!("{module} is in no layer of layers.rs"));
                continue;
            };
            let text = std::fs::read_to_string(&file).expect("source is readable");
            for (number, line) in text.lines().enumerate() {
                if line.trim_start().starts_with("//") {
                    continue;
                }
                for imported in imported_modules(line) {
                    if imported == module {
                        continue;
                    }
                    let violation = match layer_of(&imported) {
                        Some(layer) if layer < own => continue,
                        Some(_) => format!("{module} imports {imported}, which is not below it"),
                        None => format!("{module} imports {imported}, which is in no layer"),
                    };
                    violations.insert(format!("{}:{}: {violation}", relative.display(), number + 1));
                }
            }
        }
        assert!(violations.is_empty(), "imports against the layer order:\n{}", Vec::from_iter(violations).join("\n"));
    }
}
