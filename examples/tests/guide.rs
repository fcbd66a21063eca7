//! Every chapter of the user guide (`docs/src/`) is in `SUMMARY.md` and compiled as a doc test
//! (`brisk_examples::guide`, under `cfg(doctest)`), so no chapter's code goes unchecked.

use std::path::Path;

#[test]
fn every_chapter_is_listed_and_compiled() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/src");
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
        .expect("src/lib.rs");
    let summary = std::fs::read_to_string(docs.join("SUMMARY.md")).expect("SUMMARY.md");
    let mut chapters = 0;
    for entry in std::fs::read_dir(&docs).expect("docs/src") {
        let name = entry
            .expect("an entry")
            .file_name()
            .into_string()
            .expect("UTF-8");
        if !name.ends_with(".md") || name == "SUMMARY.md" {
            continue;
        }
        chapters += 1;
        assert!(
            summary.contains(&format!("({name})")),
            "docs/src/{name} is not in SUMMARY.md"
        );
        assert!(
            lib.contains(&format!("=> \"{name}\"")),
            "docs/src/{name} is not compiled: add it to `guide` in examples/src/lib.rs"
        );
    }
    assert!(chapters >= 10, "{chapters} chapters");
}
