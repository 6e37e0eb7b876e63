//! The crate layering of the workspace, written down once and checked.
//!
//! [`LAYERS`] puts every workspace member in one layer and says which
//! layers it may depend on (always layers listed before it, so the order
//! is a ladder with no way up). [`EXCEPTIONS`] lists today's known upward
//! edges, each with its reason and the issue that will remove it. The
//! checker ([`check`]) is a pure function over the members and the edges
//! between them; the test `the_workspace_keeps_its_layers` feeds it
//! `cargo metadata --no-deps` and runs in `cargo xtask test`'s unit step,
//! so a new upward edge fails the test command, naming the edge and the
//! rule. The table in ARCHITECTURE.md is [`markdown`]'s output, checked by
//! `architecture_md_shows_the_layer_table`.

use std::collections::BTreeSet;
use std::fmt;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Layer {
    Base,
    SharedRuntime,
    OnBox,
    Builder,
    Harness,
    Xtask,
}

impl Layer {
    pub fn name(self) -> &'static str {
        match self {
            Layer::Base => "base",
            Layer::SharedRuntime => "shared runtime libs",
            Layer::OnBox => "on-box",
            Layer::Builder => "builder",
            Layer::Harness => "test harness",
            Layer::Xtask => "xtask",
        }
    }

    /// Code that runs on the box (and so must never pull in the builder).
    pub fn is_runtime(self) -> bool {
        matches!(self, Layer::Base | Layer::SharedRuntime | Layer::OnBox)
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

pub struct LayerDef {
    pub layer: Layer,
    pub crates: &'static [&'static str],
    /// The layers its crates may depend on (normal, build and dev
    /// dependencies alike); a dev-dependency may also reach the harness.
    pub may_use: &'static [Layer],
    pub what: &'static str,
}

/// Bottom to top: a layer may use only layers listed before it.
pub const LAYERS: &[LayerDef] = &[
    LayerDef {
        layer: Layer::Base,
        crates: &["wanflash-bundle", "wanflash-schema", "wanflash-store"],
        may_use: &[],
        what: "types and formats both the builder and the box use; no daemons, no sockets",
    },
    LayerDef {
        layer: Layer::SharedRuntime,
        crates: &["wanflash-linequality", "wanflash-netlink", "wanflash-runtime"],
        may_use: &[Layer::Base],
        what: "libraries the daemons run (the builder side also reads the recorder, for xtask's line report, and uses the runtime's `fsx`)",
    },
    LayerDef {
        layer: Layer::OnBox,
        crates: &[
            "wanflash-failoverd",
            "wanflash-init",
            "wanflash-netcfg",
            "wanflash-testsvc",
            "wanflash-timesync",
            "wanflash-update",
            "wanflash-wanctl",
        ],
        may_use: &[Layer::Base, Layer::SharedRuntime],
        what: "one crate per binary on the image; never one another",
    },
    LayerDef {
        layer: Layer::Builder,
        crates: &["wanflash-image"],
        may_use: &[Layer::Base, Layer::SharedRuntime],
        what: "the image builder library; never a dependency of anything on the box",
    },
    LayerDef {
        layer: Layer::Harness,
        crates: &["wanflash-testbed"],
        may_use: &[
            Layer::Base,
            Layer::SharedRuntime,
            Layer::OnBox,
            Layer::Builder,
        ],
        what: "the QEMU harness; any crate may reach it as a dev-dependency, none otherwise",
    },
    LayerDef {
        layer: Layer::Xtask,
        crates: &["xtask"],
        may_use: &[
            Layer::Base,
            Layer::SharedRuntime,
            Layer::OnBox,
            Layer::Builder,
            Layer::Harness,
        ],
        what: "`cargo xtask`: the developer's commands",
    },
];

/// A known upward edge, allowed until the issue that removes it lands.
pub struct Exception {
    pub from: &'static str,
    pub to: &'static str,
    pub reason: &'static str,
    pub issue: u32,
}

/// None today: issue 15 removed the last two (the recording settings and
/// the control protocol moved into the base).
pub const EXCEPTIONS: &[Exception] = &[];

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Kind {
    Normal,
    Build,
    Dev,
}

/// `from` depends on `to`, both workspace members.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub kind: Kind,
}

impl Edge {
    pub fn new(from: &str, to: &str, kind: Kind) -> Edge {
        Edge {
            from: from.to_owned(),
            to: to.to_owned(),
            kind,
        }
    }
}

fn layer_of(layers: &[LayerDef], krate: &str) -> Option<Layer> {
    layers
        .iter()
        .find(|l| l.crates.contains(&krate))
        .map(|l| l.layer)
}

fn def_of(layers: &[LayerDef], layer: Layer) -> Option<&LayerDef> {
    layers.iter().find(|l| l.layer == layer)
}

/// The rule an edge breaks, if any (exceptions aside).
fn broken_rule(layers: &[LayerDef], e: &Edge, from: Layer, to: Layer) -> Option<String> {
    if from.is_runtime() && to == Layer::Builder {
        return Some("a runtime crate never depends on the builder".to_owned());
    }
    // A dev-dependency is compiled into tests only, never into a shipped
    // binary: it may reach a crate of its own layer (wanctl's tests serve
    // its real binary from failoverd's real decision machine). Never one
    // above, and never the builder from the box (checked before).
    if e.kind == Kind::Dev && from == to {
        return None;
    }
    if to == Layer::Harness {
        if e.kind == Kind::Dev {
            return None;
        }
        if from != Layer::Xtask {
            return Some(
                "only a dev-dependency (used from tests) may reach the test harness".to_owned(),
            );
        }
    }
    let allowed = def_of(layers, from).map_or(&[][..], |d| d.may_use);
    if allowed.contains(&to) {
        return None;
    }
    let names: Vec<&str> = allowed.iter().map(|l| l.name()).collect();
    let may = if names.is_empty() {
        "nothing in the workspace".to_owned()
    } else {
        names.join(", ")
    };
    Some(format!(
        "a crate may depend only on a lower layer ({from} may use: {may})"
    ))
}

/// Every way `members` and `edges` break the layering of `layers` (with
/// `exceptions` allowed), one sentence each naming the crates and the rule;
/// empty when the workspace keeps its layers.
pub fn check(
    layers: &[LayerDef],
    exceptions: &[Exception],
    members: &[String],
    edges: &[Edge],
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for l in layers {
        for c in l.crates {
            if !seen.insert(*c) {
                problems.push(format!(
                    "`{c}` is in more than one layer of xtask/src/layers.rs: keep it in one"
                ));
            }
            if !members.iter().any(|m| m == c) {
                problems.push(format!(
                    "`{c}` ({}) in xtask/src/layers.rs is not a workspace member: remove it from the table (and from ARCHITECTURE.md)",
                    l.layer
                ));
            }
        }
    }
    for m in members {
        if layer_of(layers, m).is_none() {
            problems.push(format!(
                "`{m}` is in no layer: add it to a layer in xtask/src/layers.rs and to the table in ARCHITECTURE.md"
            ));
        }
    }
    let mut used = BTreeSet::new();
    let mut reported = BTreeSet::new();
    for e in edges {
        let (Some(from), Some(to)) = (layer_of(layers, &e.from), layer_of(layers, &e.to)) else {
            continue; // reported above as in no layer
        };
        let Some(rule) = broken_rule(layers, e, from, to) else {
            continue;
        };
        if let Some(x) = exceptions
            .iter()
            .position(|x| x.from == e.from && x.to == e.to)
        {
            used.insert(x);
            continue;
        }
        let kind = match e.kind {
            Kind::Normal => "depends on",
            Kind::Build => "build-depends on",
            Kind::Dev => "dev-depends on",
        };
        let msg = format!("`{}` ({from}) {kind} `{}` ({to}): {rule}", e.from, e.to);
        if reported.insert(msg.clone()) {
            problems.push(msg);
        }
    }
    for (i, x) in exceptions.iter().enumerate() {
        if !used.contains(&i) {
            problems.push(format!(
                "the exception `{}` -> `{}` (issue {}) matches no forbidden edge any more: remove it from EXCEPTIONS in xtask/src/layers.rs (and from ARCHITECTURE.md)",
                x.from, x.to, x.issue
            ));
        }
    }
    problems
}

/// The workspace members and the edges between them, from the JSON of
/// `cargo metadata --format-version 1 --no-deps`.
pub fn workspace_graph(metadata: &serde_json::Value) -> Result<(Vec<String>, Vec<Edge>), String> {
    let packages = metadata["packages"]
        .as_array()
        .ok_or("cargo metadata output has no `packages` array")?;
    let members: Vec<String> = packages
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    let mut edges = Vec::new();
    for p in packages {
        let from = p["name"].as_str().ok_or("a package without a `name`")?;
        let deps = p["dependencies"]
            .as_array()
            .ok_or_else(|| format!("package `{from}` has no `dependencies` array"))?;
        for d in deps {
            let to = d["name"].as_str().unwrap_or_default();
            // A registry crate of the same name is not a member.
            if !members.iter().any(|m| m == to) || !d["source"].is_null() {
                continue;
            }
            let kind = match d["kind"].as_str() {
                None => Kind::Normal,
                Some("build") => Kind::Build,
                Some("dev") => Kind::Dev,
                Some(k) => return Err(format!("`{from}` -> `{to}`: unknown kind `{k}`")),
            };
            edges.push(Edge::new(from, to, kind));
        }
    }
    edges.sort();
    edges.dedup();
    Ok((members, edges))
}

/// Every crate `roots` compile (themselves and their transitive normal and
/// build dependencies).
fn compiled_by(roots: impl Iterator<Item = String>, edges: &[Edge]) -> BTreeSet<String> {
    let mut todo: Vec<String> = roots.collect();
    let mut reached: BTreeSet<String> = todo.iter().cloned().collect();
    while let Some(c) = todo.pop() {
        for e in edges.iter().filter(|e| e.from == c && e.kind != Kind::Dev) {
            if reached.insert(e.to.clone()) {
                todo.push(e.to.clone());
            }
        }
    }
    reached
}

/// The crates both the builder and an on-box binary compile.
pub fn shared_by_builder_and_box(layers: &[LayerDef], edges: &[Edge]) -> BTreeSet<String> {
    let of = |layer: Layer| {
        layers
            .iter()
            .filter(move |l| l.layer == layer)
            .flat_map(|l| l.crates.iter().map(|c| (*c).to_owned()))
    };
    let builder = compiled_by(of(Layer::Builder), edges);
    let on_box = compiled_by(of(Layer::OnBox), edges);
    builder.intersection(&on_box).cloned().collect()
}

/// The layer table as ARCHITECTURE.md shows it.
pub fn markdown(layers: &[LayerDef], exceptions: &[Exception]) -> String {
    let ticked = |cs: &[&str]| {
        cs.iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut s = String::from("| Layer | Crates | May depend on | What |\n|---|---|---|---|\n");
    for l in layers {
        let may: Vec<&str> = l.may_use.iter().map(|l| l.name()).collect();
        let may = if may.is_empty() {
            "—".to_owned()
        } else {
            may.join(", ")
        };
        s += &format!(
            "| {} | {} | {may} | {} |\n",
            l.layer,
            ticked(l.crates),
            l.what
        );
    }
    if exceptions.is_empty() {
        s += "\nNo known upward edge: an exception needs a row in `EXCEPTIONS` with the issue that removes it.\n";
        return s;
    }
    s += "\nKnown upward edges, allowed until their issue removes them:\n\n";
    s += "| From | To | Why | Removed by |\n|---|---|---|---|\n";
    for x in exceptions {
        s += &format!(
            "| `{}` | `{}` | {} | issue {} |\n",
            x.from, x.to, x.reason, x.issue
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEGIN: &str = "<!-- layers:begin -->\n";
    const END: &str = "<!-- layers:end -->";

    fn members() -> Vec<String> {
        LAYERS
            .iter()
            .flat_map(|l| l.crates.iter().map(|c| (*c).to_owned()))
            .collect()
    }

    /// Today's edges, written out (what `cargo metadata` says, so the
    /// synthetic tests start from a workspace that passes).
    fn today() -> Vec<Edge> {
        use Kind::*;
        [
            ("wanflash-failoverd", "wanflash-linequality", Normal),
            ("wanflash-failoverd", "wanflash-schema", Normal),
            ("wanflash-image", "wanflash-bundle", Normal),
            ("wanflash-image", "wanflash-schema", Normal),
            ("wanflash-image", "wanflash-store", Normal),
            ("wanflash-image", "wanflash-testbed", Dev),
            ("wanflash-init", "wanflash-schema", Normal),
            ("wanflash-netcfg", "wanflash-schema", Normal),
            ("wanflash-testbed", "wanflash-schema", Normal),
            ("wanflash-update", "wanflash-bundle", Normal),
            ("wanflash-update", "wanflash-store", Normal),
            ("wanflash-update", "wanflash-linequality", Dev),
            ("wanflash-linequality", "wanflash-schema", Normal),
            ("wanflash-wanctl", "wanflash-failoverd", Dev),
            ("wanflash-wanctl", "wanflash-linequality", Normal),
            ("wanflash-wanctl", "wanflash-schema", Normal),
            ("xtask", "wanflash-bundle", Normal),
            ("xtask", "wanflash-image", Normal),
            ("xtask", "wanflash-linequality", Normal),
            ("xtask", "wanflash-schema", Normal),
            ("xtask", "wanflash-testbed", Normal),
        ]
        .into_iter()
        .map(|(f, t, k)| Edge::new(f, t, k))
        .collect()
    }

    fn with(extra: Edge) -> Vec<String> {
        let mut edges = today();
        edges.push(extra);
        check(LAYERS, EXCEPTIONS, &members(), &edges)
    }

    #[test]
    fn todays_edges_pass() {
        assert_eq!(
            check(LAYERS, EXCEPTIONS, &members(), &today()),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_runtime_crate_on_the_builder_fails_naming_edge_and_rule() {
        let p = with(Edge::new("wanflash-netcfg", "wanflash-image", Kind::Normal));
        assert_eq!(
            p,
            ["`wanflash-netcfg` (on-box) depends on `wanflash-image` (builder): a runtime crate never depends on the builder"]
        );
        // Also as a dev-dependency, and from the bottom layer.
        let p = with(Edge::new("wanflash-store", "wanflash-image", Kind::Dev));
        assert_eq!(
            p,
            ["`wanflash-store` (base) dev-depends on `wanflash-image` (builder): a runtime crate never depends on the builder"]
        );
    }

    #[test]
    fn an_upward_edge_fails_naming_the_layers() {
        let p = with(Edge::new(
            "wanflash-bundle",
            "wanflash-linequality",
            Kind::Normal,
        ));
        assert_eq!(
            p,
            ["`wanflash-bundle` (base) depends on `wanflash-linequality` (shared runtime libs): a crate may depend only on a lower layer (base may use: nothing in the workspace)"]
        );
        // Sideways between two binaries is not "lower" either.
        let p = with(Edge::new("wanflash-update", "wanflash-init", Kind::Build));
        assert_eq!(
            p,
            ["`wanflash-update` (on-box) build-depends on `wanflash-init` (on-box): a crate may depend only on a lower layer (on-box may use: base, shared runtime libs)"]
        );
        // A test may use a sibling's library; the binary may not.
        assert_eq!(
            with(Edge::new("wanflash-update", "wanflash-init", Kind::Dev)),
            Vec::<String>::new()
        );
        let p = with(Edge::new(
            "wanflash-wanctl",
            "wanflash-failoverd",
            Kind::Normal,
        ));
        assert_eq!(
            p,
            ["`wanflash-wanctl` (on-box) depends on `wanflash-failoverd` (on-box): a crate may depend only on a lower layer (on-box may use: base, shared runtime libs)"]
        );
        // Nor does a dev-dependency reach up.
        let p = with(Edge::new(
            "wanflash-linequality",
            "wanflash-failoverd",
            Kind::Dev,
        ));
        assert_eq!(p.len(), 1, "{p:?}");
        // The builder never uses an on-box crate.
        let p = with(Edge::new(
            "wanflash-image",
            "wanflash-failoverd",
            Kind::Normal,
        ));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("(builder may use: base, shared runtime libs)"),
            "{p:?}"
        );
    }

    #[test]
    fn the_harness_is_reached_only_from_tests() {
        assert_eq!(
            with(Edge::new(
                "wanflash-failoverd",
                "wanflash-testbed",
                Kind::Dev
            )),
            Vec::<String>::new()
        );
        assert_eq!(
            with(Edge::new("wanflash-image", "wanflash-testbed", Kind::Normal)),
            ["`wanflash-image` (builder) depends on `wanflash-testbed` (test harness): only a dev-dependency (used from tests) may reach the test harness"]
        );
    }

    #[test]
    fn an_exception_covers_only_its_own_edge_and_a_stale_one_fails() {
        let allowed = [Exception {
            from: "wanflash-schema",
            to: "wanflash-linequality",
            reason: "test",
            issue: 1,
        }];
        let mut edges = today();
        edges.push(Edge::new(
            "wanflash-schema",
            "wanflash-linequality",
            Kind::Normal,
        ));
        assert_eq!(
            check(LAYERS, &allowed, &members(), &edges),
            Vec::<String>::new()
        );
        // schema -> failoverd is another edge and fails.
        edges.push(Edge::new(
            "wanflash-schema",
            "wanflash-failoverd",
            Kind::Normal,
        ));
        let p = check(LAYERS, &allowed, &members(), &edges);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("`wanflash-schema` (base) depends on `wanflash-failoverd` (on-box)"),
            "{p:?}"
        );
        // Once the edge is gone the exception must go too, so the table
        // only ever tightens.
        assert_eq!(
            check(LAYERS, &allowed, &members(), &today()),
            ["the exception `wanflash-schema` -> `wanflash-linequality` (issue 1) matches no forbidden edge any more: remove it from EXCEPTIONS in xtask/src/layers.rs (and from ARCHITECTURE.md)"]
        );
    }

    #[test]
    fn every_member_is_in_exactly_one_layer() {
        let mut m = members();
        m.push("wanflash-newd".to_owned());
        m.retain(|c| c != "wanflash-testsvc");
        let p = check(LAYERS, EXCEPTIONS, &m, &today());
        assert_eq!(
            p,
            [
                "`wanflash-testsvc` (on-box) in xtask/src/layers.rs is not a workspace member: remove it from the table (and from ARCHITECTURE.md)",
                "`wanflash-newd` is in no layer: add it to a layer in xtask/src/layers.rs and to the table in ARCHITECTURE.md",
            ]
        );
    }

    #[test]
    fn layers_only_use_layers_below_them() {
        for (i, l) in LAYERS.iter().enumerate() {
            for u in l.may_use {
                let j = LAYERS.iter().position(|d| d.layer == *u);
                assert!(
                    j.is_some_and(|j| j < i),
                    "{} may use {u}, which is not listed below it",
                    l.layer
                );
            }
            if l.layer.is_runtime() {
                assert!(!l.may_use.contains(&Layer::Builder), "{}", l.layer);
            }
        }
    }

    #[test]
    fn the_graph_is_read_from_cargo_metadata_json() {
        let json = serde_json::json!({"packages": [
            {"name": "a", "dependencies": [
                {"name": "b", "kind": null, "source": null},
                {"name": "b", "kind": "dev", "source": null},
                {"name": "c", "kind": "build", "source": null},
                {"name": "serde", "kind": null, "source": "registry+https://github.com/rust-lang/crates.io-index"},
            ]},
            {"name": "b", "dependencies": []},
            {"name": "c", "dependencies": [
                {"name": "b", "kind": null, "source": "registry+https://github.com/rust-lang/crates.io-index"},
            ]},
        ]});
        let (members, edges) = workspace_graph(&json).unwrap();
        assert_eq!(members, ["a", "b", "c"]);
        assert_eq!(
            edges,
            [
                Edge::new("a", "b", Kind::Normal),
                Edge::new("a", "b", Kind::Dev),
                Edge::new("a", "c", Kind::Build),
            ]
        );
    }

    fn real_workspace() -> (Vec<String>, Vec<Edge>) {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let ws = crate::workspace();
        let out = std::process::Command::new(&cargo)
            .args([
                "metadata",
                "--format-version",
                "1",
                "--no-deps",
                "--offline",
            ])
            .current_dir(&ws)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cargo metadata in `{}` failed:\n{}",
            ws.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        workspace_graph(&json).unwrap()
    }

    /// The real check: fails `cargo xtask test` when a crate gains an edge
    /// to a layer above it.
    #[test]
    fn the_workspace_keeps_its_layers() {
        let (members, edges) = real_workspace();
        assert!(members.len() >= 10, "{members:?}");
        assert!(edges.len() >= 10, "{edges:?}");
        let problems = check(LAYERS, EXCEPTIONS, &members, &edges);
        assert!(
            problems.is_empty(),
            "the crate layering (xtask/src/layers.rs, ARCHITECTURE.md) is broken:\n  {}",
            problems.join("\n  ")
        );
    }

    fn architecture_md() -> String {
        let path = crate::workspace().join("ARCHITECTURE.md");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read `{}`: {e}", path.display()))
    }

    #[test]
    fn architecture_md_shows_the_layer_table() {
        let doc = architecture_md();
        let want = markdown(LAYERS, EXCEPTIONS);
        let got = doc
            .split_once(BEGIN)
            .and_then(|(_, rest)| rest.split_once(END))
            .map(|(table, _)| table.trim());
        assert_eq!(
            got,
            Some(want.trim()),
            "ARCHITECTURE.md's table between `{}` and `{END}` differs from xtask/src/layers.rs; put this there:\n{want}",
            BEGIN.trim_end()
        );
    }

    /// The sharing invariant names exactly the crates both sides compile.
    #[test]
    fn architecture_md_names_the_crates_both_sides_share() {
        let (_, edges) = real_workspace();
        let shared = shared_by_builder_and_box(LAYERS, &edges);
        assert!(shared.contains("wanflash-schema"), "{shared:?}");
        let doc = architecture_md();
        let line = doc
            .lines()
            .find(|l| l.starts_with("- A runtime crate never depends on the builder"))
            .expect("ARCHITECTURE.md has the invariant `- A runtime crate never depends on the builder ...`");
        let named: BTreeSet<String> = line
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|w| w.starts_with("wanflash-"))
            .map(str::to_owned)
            .collect();
        assert_eq!(
            named, shared,
            "ARCHITECTURE.md's invariant should name the crates the builder and the box share:\n{line}"
        );
    }
}
