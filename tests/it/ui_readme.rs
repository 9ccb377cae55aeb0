//! The screens in the README are the snapshot files, character for character.

#[test]
fn readme_screens_equal_the_snapshots() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README.md");
    let mut checked = 0;
    let mut rest = readme.as_str();
    while let Some(i) = rest.find("<!-- snapshot: ") {
        rest = &rest[i + "<!-- snapshot: ".len()..];
        let name = &rest[..rest.find(" -->").expect("closed marker")];
        let start = rest
            .find("```text\n")
            .expect("a text block after the marker")
            + "```text\n".len();
        let end = start + rest[start..].find("\n```").expect("closed block");
        let shown = &rest[start..end];
        let snap = std::fs::read_to_string(format!("{root}/tests/it/snapshots/it__{name}.snap"))
            .unwrap_or_else(|e| panic!("README names snapshot {name}: {e}"));
        let body = snap
            .splitn(3, "---\n")
            .nth(2)
            .expect("snapshot body")
            .trim_end_matches('\n');
        assert_eq!(
            shown, body,
            "README screen {name} differs from its snapshot: copy the snapshot body (after its header) into README.md"
        );
        checked += 1;
    }
    assert!(checked >= 2, "the README shows at least two screens");
}
