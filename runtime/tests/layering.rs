//! The runtime's layering, checked from its source: every `crate::` and `super::` path in
//! `runtime/src` (in `use` items, in code, and in macro bodies) is resolved to the file that
//! defines it, and
//!
//! 1. an import from one top-level module to another must go down the layers below;
//! 2. the server never imports the client side of the transport (`transport::client`);
//! 3. no files import each other in a cycle (the server's modules, say, form a one-way chain);
//! 4. re-exports name what they export (no `pub use x::*`), so every path can be followed.
//!
//! Generated code compiled into the runtime (the etcd stubs) names the crate `::brisk`, as
//! in a user's crate: those paths count as `crate::` paths.
//!
//! One call goes up, and only one: a registry calls `global::initialize()` before its first
//! look-up, and `global` registers there the extensions built above it (etcd's naming service
//! and registrar, on channels), as brpc's `GlobalInitializeOrDie()` does. Only
//! `naming::registry` may import from `global`, and only `global::initialize`; that edge is
//! left out of the cycle check (the registration is a run-time link, made once, from the top).
//!
//! ```text
//! base (error, codec, controller, proto_source, ...)
//!                                       <-  protocol  <-  transport  <-  channel, server
//!                                                                   <-  combo (<- channel)
//!                                       <-  naming  <-  lb  <-  channel
//!                                       <-  naming  <-  server (registration)
//!                                       <-  naming  <-  etcd (<- channel; joins naming through global)
//!                                       <-  limiter  <-  server
//!                                       <-  metrics  <-  transport, channel, server
//!                          protocol  <-  rpcz  <-  channel, server
//! ```
//!
//! A failure names the file, the path it imports and the rule it breaks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// Top-level modules that import nothing above them: shared types and helpers.
const BASE: &[&str] = &[
    "auth",
    "clock",
    "codec",
    "compress",
    "controller",
    "error",
    "executor",
    "json",
    "method",
    "proto_source",
    "response_metadata",
    "streaming",
    "tls",
];

/// What each layer above the base may import besides the base (and itself).
fn allowed(from: &str) -> Option<&'static [&'static str]> {
    Some(match from {
        "protocol" => &[],
        "naming" => &[],
        "lb" => &["naming"],
        "limiter" => &[],
        "metrics" => &[],
        "rpcz" => &["protocol"],
        "transport" => &["protocol", "metrics"],
        "channel" => &["protocol", "transport", "lb", "naming", "metrics", "rpcz"],
        "server" => &[
            "protocol",
            "transport",
            "limiter",
            "metrics",
            "rpcz",
            "naming",
        ],
        "combo" => &["protocol", "transport", "channel", "lb", "naming"],
        // A protocol's user-facing facade: its calls on channels, its service on servers.
        "redis" => &["protocol", "transport", "channel", "server"],
        "memcache" => &["protocol", "transport", "channel"],
        // etcd's client: generated stubs over channels, its naming service and registrar.
        "etcd" => &["channel", "naming"],
        "tower" => &["server"],
        // The interceptors of both sides, in one place.
        "interceptor" => &["channel", "server"],
        // Facades: the crate root and the items generated code names re-export everything;
        // the fuzz targets' entry points reach every parser.
        "" | "codegen" | "fuzzing" => return None,
        // The composition root: registers the extensions built above the registries in them
        // (see the crate docs).
        "global" => &["naming", "etcd"],
        base if BASE.contains(&base) => &[],
        _ => &[],
    })
}

/// A module path, as segments after `crate`.
type ModPath = Vec<String>;

struct Source {
    module: ModPath,
    file: PathBuf,
    syntax: syn::File,
}

/// One `crate::`/`super::` path a file names, with where it was seen.
#[derive(Debug)]
struct Reference {
    /// The path, made absolute (segments after `crate`).
    path: ModPath,
    /// As written, for the report.
    written: String,
    /// The name a re-export (`pub use`, `pub(crate) use`) brings in: the module's facade, a
    /// use of it only if the module itself names it elsewhere.
    reexport: Option<String>,
    /// Seen in a `#[cfg(test)]` module: it counts for the layers, not for cycles (tests may
    /// lean on whatever helps them).
    test: bool,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn module_of(file: &Path, src: &Path) -> ModPath {
    let relative = file.strip_prefix(src).expect("under src");
    let mut segments: Vec<String> = relative
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    let last = segments.pop().expect("a file name");
    match last.as_str() {
        "lib.rs" | "mod.rs" => {}
        name => segments.push(name.trim_end_matches(".rs").to_owned()),
    }
    segments
}

fn sources() -> Vec<Source> {
    let src = src_dir();
    let mut files = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file).expect("read file");
            let syntax = syn::parse_file(&text)
                .unwrap_or_else(|e| panic!("{}: does not parse: {e}", file.display()));
            Source {
                module: module_of(&file, &src),
                file,
                syntax,
            }
        })
        .collect()
}

/// Collects the paths a file names, resolving `super` and `self` against the (possibly
/// inline) module they appear in.
struct Collector {
    /// The module the visitor is in: the file's, plus inline `mod x { }` blocks.
    module: ModPath,
    /// Paths as written, with the module they were written in, until [`Collector::finish`]
    /// resolves them.
    raw: Vec<(ModPath, Vec<String>, Option<bool>, bool)>,
    /// Modules `use` items bring in under a name (`use crate::transport::client;`,
    /// `use super::client::{self, ..}`), by the module they are in and the name.
    aliases: HashMap<(ModPath, String), ModPath>,
    found: Vec<Reference>,
    /// Inside a `pub use` item.
    in_reexport: bool,
    /// Inside a `#[cfg(test)]` module.
    in_test: bool,
    /// Every identifier outside `use` items, to tell which re-exported names a module uses.
    idents: BTreeSet<String>,
    /// Every module of the crate, to tell a child module's name from another crate's.
    modules: BTreeSet<ModPath>,
}

impl Collector {
    fn new(module: ModPath, modules: BTreeSet<ModPath>) -> Self {
        Collector {
            module,
            raw: Vec::new(),
            aliases: HashMap::new(),
            found: Vec::new(),
            in_reexport: false,
            in_test: false,
            idents: BTreeSet::new(),
            modules,
        }
    }

    fn absolute(&self, segments: &[String]) -> Option<ModPath> {
        self.absolute_in(&self.module, segments)
    }

    /// `segments`, written in `module`, as a path from the crate root.
    fn absolute_in(&self, module: &ModPath, segments: &[String]) -> Option<ModPath> {
        let mut base = match segments.first()?.as_str() {
            "crate" => Vec::new(),
            // `::brisk::...` in generated code is the crate itself (a lone `brisk` is a
            // variable).
            "brisk" if segments.len() > 1 => Vec::new(),
            "super" | "self" => module.clone(),
            // A path starting with a child module's name is relative to this module, and one
            // starting with a name a `use` gave a module goes through it (anything else is
            // another crate's, or a local name: a lone `call` is a variable).
            first => {
                if segments.len() < 2 {
                    return None;
                }
                let mut relative = module.clone();
                relative.push(first.to_owned());
                let mut path = if self.modules.contains(&relative) {
                    relative
                } else {
                    self.alias(module, first)?.clone()
                };
                path.extend(segments[1..].iter().cloned());
                return Some(path);
            }
        };
        let mut rest = segments;
        if rest[0] == "crate" || rest[0] == "brisk" {
            rest = &rest[1..];
        } else {
            while let Some(first) = rest.first() {
                match first.as_str() {
                    "super" => {
                        base.pop();
                    }
                    "self" => {}
                    _ => break,
                }
                rest = &rest[1..];
            }
        }
        base.extend(rest.iter().cloned());
        Some(base)
    }

    /// The module `name` stands for in `module` (or in the modules around it).
    fn alias(&self, module: &ModPath, name: &str) -> Option<&ModPath> {
        (0..=module.len())
            .rev()
            .find_map(|len| self.aliases.get(&(module[..len].to_vec(), name.to_owned())))
    }

    fn record(&mut self, segments: Vec<String>) {
        let reexport = self.in_reexport.then_some(true);
        self.raw
            .push((self.module.clone(), segments, reexport, self.in_test));
    }

    /// Notes that a `use` brings module `path` in as `name`.
    fn note_alias(&mut self, path: &[String], name: String) {
        if let Some(target) = self.absolute(path) {
            if self.modules.contains(&target) {
                self.aliases.insert((self.module.clone(), name), target);
            }
        }
    }

    /// Resolves what was recorded, now that every `use` of the file is known.
    fn finish(&mut self) {
        for (module, segments, reexport, test) in std::mem::take(&mut self.raw) {
            if let Some(path) = self.absolute_in(&module, &segments) {
                self.found.push(Reference {
                    written: segments.join("::"),
                    reexport: reexport.and_then(|_| path.last().cloned()),
                    test,
                    path,
                });
            }
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut path = prefix.clone();
                if n.ident != "self" {
                    path.push(n.ident.to_string());
                }
                if let Some(name) = path.last().cloned() {
                    self.note_alias(&path, name);
                }
                self.record(path);
            }
            syn::UseTree::Rename(r) => {
                let mut path = prefix.clone();
                if r.ident != "self" {
                    path.push(r.ident.to_string());
                }
                self.note_alias(&path, r.rename.to_string());
                self.record(path);
            }
            syn::UseTree::Glob(_) => self.record(prefix.clone()),
            syn::UseTree::Group(g) => {
                for item in &g.items {
                    self.use_tree(prefix, item);
                }
            }
        }
    }

    /// `crate :: a :: b` and `super :: a` sequences in a macro's tokens.
    fn tokens(&mut self, tokens: proc_macro2::TokenStream) {
        let tokens: Vec<proc_macro2::TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                proc_macro2::TokenTree::Group(g) => self.tokens(g.stream()),
                proc_macro2::TokenTree::Ident(id) if id == "crate" || id == "super" => {
                    let mut segments = vec![id.to_string()];
                    let mut j = i + 1;
                    while j + 2 < tokens.len() + 1 {
                        let colons = matches!((&tokens.get(j), &tokens.get(j + 1)),
                            (Some(proc_macro2::TokenTree::Punct(a)), Some(proc_macro2::TokenTree::Punct(b)))
                                if a.as_char() == ':' && b.as_char() == ':');
                        match (colons, tokens.get(j + 2)) {
                            (true, Some(proc_macro2::TokenTree::Ident(next))) => {
                                segments.push(next.to_string());
                                j += 3;
                            }
                            _ => break,
                        }
                    }
                    if segments.len() > 1 {
                        self.record(segments);
                    }
                    i = j;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
    }
}

impl<'ast> Visit<'ast> for Collector {
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.in_reexport = !matches!(item.vis, syn::Visibility::Inherited);
        self.use_tree(&mut Vec::new(), &item.tree);
        self.in_reexport = false;
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if item.content.is_some() {
            let test = item.attrs.iter().any(|attr| {
                attr.path().is_ident("cfg")
                    && attr
                        .parse_args::<syn::Ident>()
                        .is_ok_and(|arg| arg == "test")
            });
            let was_test = self.in_test;
            self.in_test |= test;
            self.module.push(item.ident.to_string());
            syn::visit::visit_item_mod(self, item);
            self.module.pop();
            self.in_test = was_test;
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        self.record(segments);
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.tokens(mac.tokens.clone());
        syn::visit::visit_macro(self, mac);
    }

    fn visit_ident(&mut self, ident: &'ast proc_macro2::Ident) {
        self.idents.insert(ident.to_string());
    }

    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {
        // `pub(crate)`, `pub(super)`: who may see an item, not what it uses.
    }

    fn visit_attribute(&mut self, _: &'ast syn::Attribute) {
        // Doc comments and attributes name paths for rustdoc, not for the compiler.
    }
}

/// What a module re-exports from elsewhere: `pub use child::Item` and the like, by item name.
fn reexports(sources: &[Source]) -> HashMap<(ModPath, String), ModPath> {
    let mut map = HashMap::new();
    for source in sources {
        for item in &source.syntax.items {
            let syn::Item::Use(item) = item else { continue };
            if matches!(item.vis, syn::Visibility::Inherited) {
                continue;
            }
            let collector = Collector::new(source.module.clone(), BTreeSet::new());
            // Relative re-exports (`pub use child::X`) resolve against the module itself.
            let mut tree_paths = Vec::new();
            flatten(&mut Vec::new(), &item.tree, &mut tree_paths);
            for (path, name) in tree_paths {
                let absolute = match path.first().map(String::as_str) {
                    Some("crate" | "super" | "self") => collector.absolute(&path),
                    Some(_) => {
                        let mut p = source.module.clone();
                        p.extend(path.iter().cloned());
                        Some(p)
                    }
                    None => None,
                };
                if let Some(absolute) = absolute {
                    map.insert((source.module.clone(), name), absolute);
                }
            }
        }
    }
    map
}

/// `(path, exported name)` for each leaf of a use tree.
fn flatten(prefix: &mut Vec<String>, tree: &syn::UseTree, out: &mut Vec<(ModPath, String)>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            flatten(prefix, &p.tree, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let mut path = prefix.clone();
            path.push(n.ident.to_string());
            out.push((path, n.ident.to_string()));
        }
        syn::UseTree::Rename(r) => {
            let mut path = prefix.clone();
            path.push(r.ident.to_string());
            out.push((path, r.rename.to_string()));
        }
        syn::UseTree::Glob(_) => {}
        syn::UseTree::Group(g) => {
            for item in &g.items {
                flatten(prefix, item, out);
            }
        }
    }
}

/// The file module a path lands in: the longest prefix that is a file, followed through
/// re-exports of the item named next.
fn resolve(
    path: &[String],
    modules: &BTreeSet<ModPath>,
    reexports: &HashMap<(ModPath, String), ModPath>,
    depth: usize,
) -> ModPath {
    let mut len = path.len();
    while len > 0 && !modules.contains(&path[..len].to_vec()) {
        len -= 1;
    }
    let module = path[..len].to_vec();
    if depth < 8 {
        if let Some(name) = path.get(len) {
            if let Some(target) = reexports.get(&(module.clone(), name.clone())) {
                let mut full = target.clone();
                full.extend(path[len + 1..].iter().cloned());
                return resolve(&full, modules, reexports, depth + 1);
            }
        }
    }
    module
}

fn top(module: &[String]) -> &str {
    module.first().map(String::as_str).unwrap_or("")
}

fn display(module: &[String]) -> String {
    if module.is_empty() {
        "crate".to_owned()
    } else {
        module.join("::")
    }
}

/// An import from one file module to another.
struct Edge {
    /// The importing file.
    file: PathBuf,
    /// One example of how it is written.
    written: String,
    /// Every way it is written.
    all_written: BTreeSet<String>,
    /// Whether only `#[cfg(test)]` code imports it.
    tests_only: bool,
}

/// Every import edge between two files, with one example of how it is written.
fn edges(sources: &[Source]) -> BTreeMap<(ModPath, ModPath), Edge> {
    let modules: BTreeSet<ModPath> = sources.iter().map(|s| s.module.clone()).collect();
    let reexports = reexports(sources);
    let mut edges = BTreeMap::new();
    for source in sources {
        let mut collector = Collector::new(source.module.clone(), modules.clone());
        collector.visit_file(&source.syntax);
        collector.finish();
        let idents = std::mem::take(&mut collector.idents);
        for reference in collector.found {
            let target = resolve(&reference.path, &modules, &reexports, 0);
            // A module's own items are not a dependency; nor is a module re-exporting its
            // children's items (its facade). Its using them is.
            let facade_only = reference
                .reexport
                .as_ref()
                .is_some_and(|name| !idents.contains(name));
            if target == source.module || (facade_only && target.starts_with(&source.module)) {
                continue;
            }
            let edge = edges
                .entry((source.module.clone(), target))
                .or_insert_with(|| Edge {
                    file: source.file.clone(),
                    written: reference.written.clone(),
                    all_written: BTreeSet::new(),
                    tests_only: true,
                });
            edge.all_written.insert(reference.written.clone());
            if !reference.test && edge.tests_only {
                // The example reported is one from the module's own code.
                edge.written = reference.written.clone();
                edge.tests_only = false;
            }
        }
    }
    edges
}

#[test]
fn imports_go_down_the_layers() {
    let sources = sources();
    let src = src_dir();
    let mut broken = Vec::new();
    for (
        (from, to),
        Edge {
            file,
            written,
            all_written,
            ..
        },
    ) in edges(&sources)
    {
        let (from_top, to_top) = (top(&from), top(&to));
        let file = file
            .strip_prefix(&src)
            .unwrap_or(&file)
            .display()
            .to_string();
        if from_top == "server" && to.starts_with(&["transport".to_owned(), "client".to_owned()]) {
            broken.push(format!(
                "{file}: `{written}` — the server must not import client code ({})",
                display(&to)
            ));
        }
        if from_top == to_top || to_top.is_empty() && to.is_empty() && from_top.is_empty() {
            continue;
        }
        if to_top == "global" {
            // The one upward call: the naming registry runs `global::initialize()` first.
            if from != ["naming", "registry"] {
                broken.push(format!(
                    "{file}: `{written}`: only the naming registry may call into `global`"
                ));
            }
            for written in all_written
                .iter()
                .filter(|w| !w.ends_with("global::initialize"))
            {
                broken.push(format!(
                    "{file}: `{written}`: of `global`, only `initialize` may be imported"
                ));
            }
            continue;
        }
        // Generated code (the etcd stubs) names the items generated code is given, as it
        // does in a user's crate; the code around it does not.
        if to_top == "codegen" && from.iter().any(|segment| segment == "generated") {
            continue;
        }
        let Some(allowed) = allowed(from_top) else {
            continue;
        };
        if BASE.contains(&to_top) || allowed.contains(&to_top) {
            continue;
        }
        let why = if to.is_empty() {
            "the crate root re-exports everything: import from the module itself".to_owned()
        } else {
            format!("`{from_top}` may import the base and {allowed:?} only")
        };
        broken.push(format!(
            "{file}: `{written}` ({}) goes against the layering: {why}",
            display(&to)
        ));
    }
    assert!(
        broken.is_empty(),
        "imports against the layering:\n  {}",
        broken.join("\n  ")
    );
}

#[test]
fn re_exports_name_what_they_export() {
    let src = src_dir();
    let mut globs = Vec::new();
    for source in sources() {
        for item in &source.syntax.items {
            let syn::Item::Use(item) = item else { continue };
            if matches!(item.vis, syn::Visibility::Inherited) {
                continue;
            }
            let mut leaves = Vec::new();
            flatten_globs(&mut Vec::new(), &item.tree, &mut leaves);
            let file = source.file.strip_prefix(&src).unwrap_or(&source.file);
            for glob in leaves {
                globs.push(format!("{}: `pub use {glob}::*`", file.display()));
            }
        }
    }
    assert!(
        globs.is_empty(),
        "glob re-exports hide what a module exports (and from where):\n  {}",
        globs.join("\n  ")
    );
}

/// The prefixes of a use tree's globs.
fn flatten_globs(prefix: &mut Vec<String>, tree: &syn::UseTree, out: &mut Vec<String>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            flatten_globs(prefix, &p.tree, out);
            prefix.pop();
        }
        syn::UseTree::Glob(_) => out.push(prefix.join("::")),
        syn::UseTree::Group(g) => {
            for item in &g.items {
                flatten_globs(prefix, item, out);
            }
        }
        syn::UseTree::Name(_) | syn::UseTree::Rename(_) => {}
    }
}

#[test]
fn no_module_imports_itself_through_others() {
    let sources = sources();
    let src = src_dir();
    let edges = edges(&sources);
    let mut graph: BTreeMap<&ModPath, Vec<&ModPath>> = BTreeMap::new();
    for ((from, to), edge) in &edges {
        // The crate root and `codegen` only re-export; `global` is reached only through
        // `initialize`, once, at run time (see the crate docs).
        if from.is_empty() || top(from) == "codegen" || top(to) == "global" || edge.tests_only {
            continue;
        }
        graph.entry(from).or_default().push(to);
    }
    let cycles = cycles(&graph);
    let described: Vec<String> = cycles
        .iter()
        .map(|cycle| {
            let steps: Vec<String> = cycle
                .windows(2)
                .map(|pair| {
                    let edge = &edges[&(pair[0].clone(), pair[1].clone())];
                    let file = edge.file.strip_prefix(&src).unwrap_or(&edge.file);
                    format!("{} imports `{}`", file.display(), edge.written)
                })
                .collect();
            steps.join(", ")
        })
        .collect();
    assert!(
        described.is_empty(),
        "modules that import each other in a cycle:\n  {}",
        described.join("\n  ")
    );
}

/// One cycle (first node repeated at the end) per strongly connected component of more than
/// one module.
fn cycles<'a>(graph: &BTreeMap<&'a ModPath, Vec<&'a ModPath>>) -> Vec<Vec<ModPath>> {
    let mut found = Vec::new();
    let mut done: BTreeSet<&ModPath> = BTreeSet::new();
    for &start in graph.keys() {
        if done.contains(start) {
            continue;
        }
        // Depth-first search for a path back to `start`.
        let mut stack: Vec<(&ModPath, usize)> = vec![(start, 0)];
        let mut on_path: Vec<&ModPath> = vec![start];
        let mut seen: BTreeSet<&ModPath> = BTreeSet::from([start]);
        let mut cycle = None;
        while let Some((node, next)) = stack.last_mut() {
            let successors = graph.get(*node).map(Vec::as_slice).unwrap_or(&[]);
            if *next >= successors.len() {
                stack.pop();
                on_path.pop();
                continue;
            }
            let succ = successors[*next];
            *next += 1;
            if succ == start {
                let mut c: Vec<ModPath> = on_path.iter().map(|m| (*m).clone()).collect();
                c.push(start.clone());
                cycle = Some(c);
                break;
            }
            if seen.insert(succ) {
                stack.push((succ, 0));
                on_path.push(succ);
            }
        }
        if let Some(cycle) = cycle {
            for m in &cycle {
                done.insert(graph.keys().find(|k| **k == m).copied().unwrap_or(start));
            }
            found.push(cycle);
        }
        done.insert(start);
    }
    found
}
